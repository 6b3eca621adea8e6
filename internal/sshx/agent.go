package sshx

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// AgentSocketName is the file name of the agent's socket inside its private directory.
const AgentSocketName = "agent.sock"

// StartAgent serves an in-process ssh-agent holding keys on a unix socket in a fresh private
// (0700) temporary directory. Each key is a crypto private key as returned by
// ssh.ParseRawPrivateKey (ed25519.PrivateKey, *ed25519.PrivateKey, *rsa.PrivateKey,
// *ecdsa.PrivateKey). It returns the socket path, to be handed to ssh as SSH_AUTH_SOCK, and a
// stop function that closes the listener and every open connection and removes the directory.
//
// The socket itself is connectable by any user: the directory keeps other users of this
// machine out, while a container that gets only the socket bind-mounted (the Ansible runner
// runs as its own non-root user) can still use it. The keys never leave this process.
func StartAgent(keys ...any) (socket string, stop func() error, err error) {
	if len(keys) == 0 {
		return "", nil, errors.New("ssh-agent: no key to hold")
	}
	keyring := agent.NewKeyring()
	for i, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k, Comment: "clock deploy key"}); err != nil {
			return "", nil, fmt.Errorf("ssh-agent: key %d: %w", i, err)
		}
	}

	dir, err := os.MkdirTemp("", "clock-agent-")
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
	if err := os.Chmod(socket, 0o666); err != nil {
		_ = ln.Close()
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}

	s := &agentServer{keyring: keyring, ln: ln, dir: dir, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return socket, s.stop, nil
}

// StartAgentFromFile reads an unencrypted OpenSSH (or PEM) private key file and serves it
// with StartAgent.
func StartAgentFromFile(path string) (socket string, stop func() error, err error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %s: %w", path, err)
	}
	return StartAgent(key)
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
