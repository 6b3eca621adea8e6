package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// AgentSocketName is the file name of the agent's socket inside its private directory.
const AgentSocketName = "agent.sock"

// agentDirPrefix starts the name of every agent's folder in the temp directory; the sweep
// of folders a killed run left behind looks for it.
const agentDirPrefix = "clock-agent-"

// AgentConfig says whom an agent serves.
type AgentConfig struct {
	// ClientUID is the user the agent's client runs as (the Ansible runner container's),
	// or -1 for any user that can reach the socket.
	ClientUID int
}

// Start serves an in-process ssh-agent holding keys on a unix socket in a fresh private
// (0700) temporary directory. Each key is a crypto private key as returned by
// ssh.ParseRawPrivateKey (ed25519.PrivateKey, *ed25519.PrivateKey, *rsa.PrivateKey,
// *ecdsa.PrivateKey). It returns the socket path, to be handed to ssh as SSH_AUTH_SOCK, and a
// stop function that closes the listener and every open connection and removes the directory.
// Folders that killed runs left behind are swept first.
//
// The agent only lists its keys and signs with them: adding, removing, locking and
// extensions are refused, so a client can neither take the keys away from the deploy nor
// plant its own. The keys never leave this process. The directory keeps other users of this
// machine out; the socket belongs to ClientUID with mode 0600 where this process may give
// it away (as root) or is that user, since a container that gets only the socket
// bind-mounted never passes through the directory. Otherwise it is 0666 and the directory
// is the only fence.
func (c AgentConfig) Start(keys ...any) (socket string, stop func() error, err error) {
	if len(keys) == 0 {
		return "", nil, errors.New("ssh-agent: no key to hold")
	}
	keyring := agent.NewKeyring()
	for i, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k, Comment: "clock deploy key"}); err != nil {
			return "", nil, fmt.Errorf("ssh-agent: key %d: %w", i, err)
		}
	}
	served := signOnly{keyring.(agent.ExtendedAgent)}

	// A sweep that fails only leaves litter: the new agent does not depend on it.
	_, _ = sweepAgentDirs(os.TempDir(), time.Now())
	dir, err := os.MkdirTemp("", agentDirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}
	// MkdirTemp already uses 0700; say it explicitly since the socket relies on it.
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}
	socket = filepath.Join(dir, AgentSocketName)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("ssh-agent: listen: %w", err)
	}
	owner, mode := socketAccess(os.Geteuid(), c.ClientUID)
	if owner >= 0 {
		err = os.Chown(socket, owner, -1)
	}
	if err == nil {
		err = os.Chmod(socket, mode)
	}
	if err != nil {
		_ = ln.Close()
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}

	s := &agentServer{keyring: served, ln: ln, dir: dir, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return socket, s.stop, nil
}

// socketAccess is who gets the agent's socket: the client alone (owner, 0600) where this
// process, running as euid, can arrange it, else anyone who reaches it (-1, 0666).
func socketAccess(euid, clientUID int) (owner int, mode os.FileMode) {
	switch {
	case clientUID < 0:
		return -1, 0o666
	case euid == 0:
		return clientUID, 0o600
	case euid == clientUID:
		return -1, 0o600
	}
	return -1, 0o666
}

// StartFromFile reads an unencrypted OpenSSH (or PEM) private key file and serves it with
// Start.
func (c AgentConfig) StartFromFile(path string) (socket string, stop func() error, err error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %s: %w", path, err)
	}
	return c.Start(key)
}

// errRefused is the answer to every agent request but list and sign.
var errRefused = errors.New("ssh-agent: refused: this agent only lists and signs")

// signOnly is the agent the runner sees: list and sign with the keys mage loaded, nothing
// that changes, locks or exports them.
type signOnly struct{ keys agent.ExtendedAgent }

func (a signOnly) List() ([]*agent.Key, error) { return a.keys.List() }
func (a signOnly) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return a.keys.Sign(key, data)
}
func (a signOnly) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	return a.keys.SignWithFlags(key, data, flags)
}
func (signOnly) Add(agent.AddedKey) error                 { return errRefused }
func (signOnly) Remove(ssh.PublicKey) error               { return errRefused }
func (signOnly) RemoveAll() error                         { return errRefused }
func (signOnly) Lock([]byte) error                        { return errRefused }
func (signOnly) Unlock([]byte) error                      { return errRefused }
func (signOnly) Signers() ([]ssh.Signer, error)           { return nil, errRefused }
func (signOnly) Extension(string, []byte) ([]byte, error) { return nil, agent.ErrExtensionUnsupported }

// staleAfter is how old a socket-less agent folder must be before the sweep takes it: a
// fresh one may belong to an agent that is between making its folder and listening.
const staleAfter = time.Minute

// sweepAgentDirs removes the agent folders in tmp that this user's killed runs left: the
// socket is there but nobody listens (a clean stop removes the whole folder), or there is
// no socket and the folder is older than a minute. Folders of live agents, of other users
// and anything else are kept. It returns what it removed.
func sweepAgentDirs(tmp string, now time.Time) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(tmp, agentDirPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, dir := range dirs {
		st, err := os.Lstat(dir)
		if err != nil || !st.IsDir() || !ownedByMe(st) {
			continue
		}
		socket := filepath.Join(dir, AgentSocketName)
		c, err := net.DialTimeout("unix", socket, time.Second)
		switch {
		case err == nil:
			c.Close()
			continue // a live agent
		case errors.Is(err, syscall.ECONNREFUSED):
		case errors.Is(err, fs.ErrNotExist) && now.Sub(st.ModTime()) > staleAfter:
		default:
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

func ownedByMe(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid()
}

type agentServer struct {
	keyring agent.Agent
	ln      net.Listener
	dir     string
	wg      sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	once    sync.Once
	err     error
}

func (s *agentServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return // the listener was closed by stop
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			_ = conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			// ServeAgent returns io.EOF when the client hangs up: nothing to report.
			_ = agent.ServeAgent(s.keyring, conn)
			_ = conn.Close()
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

func (s *agentServer) stop() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopped = true
		err := s.ln.Close()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if rmErr := os.RemoveAll(s.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		s.err = err
	})
	return s.err
}
