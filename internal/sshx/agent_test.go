package sshx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// anyUser is an agent any local user that reaches its socket may use, as the tests' clients
// run as this process's user.
var anyUser = AgentConfig{ClientUID: -1}

func TestStartAgent(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	wantPub := signer.PublicKey().Marshal()

	socket, stop, err := anyUser.Start(priv)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = stop() })

	dirInfo, err := os.Stat(filepath.Dir(socket))
	if err != nil {
		t.Fatal(err)
	}
	if got := dirInfo.Mode().Perm(); got != 0o700 {
		t.Errorf("agent dir mode = %v, want 0700", got)
	}

	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("dial agent: %v", err)
	}
	client := agent.NewClient(conn)

	keys, err := client.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), wantPub) {
		t.Fatalf("List = %v, want the one deploy key", keys)
	}

	data := []byte("clock")
	sig, err := client.Sign(signer.PublicKey(), data)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if err := signer.PublicKey().Verify(data, sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}

	if err := sshLoginWithAgent(t, client, signer.PublicKey()); err != nil {
		t.Fatalf("ssh login through the agent: %v", err)
	}
	_ = conn.Close()

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after stop: err = %v, want not exist", err)
	}
	if _, err := os.Stat(filepath.Dir(socket)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("agent dir after stop: err = %v, want not exist", err)
	}
	if err := stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestStartAgentFromFile(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	socket, stop, err := anyUser.StartFromFile(path)
	if err != nil {
		t.Fatalf("StartFromFile: %v", err)
	}
	t.Cleanup(func() { _ = stop() })

	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys, err := agent.NewClient(conn).List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("List = %v, want the key from %s", keys, path)
	}
}

func TestStartAgentNoKey(t *testing.T) {
	if _, _, err := anyUser.Start(); err == nil {
		t.Fatal("anyUser.Start() with no key: want an error")
	}
}

// sshLoginWithAgent runs an SSH server on 127.0.0.1:0 that accepts only authorized and
// logs into it with the agent's signers.
func sshLoginWithAgent(t *testing.T, client agent.ExtendedAgent, authorized ssh.PublicKey) error {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		_, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err != nil {
			serverErr <- err
			return
		}
		go ssh.DiscardRequests(reqs)
		for ch := range chans {
			_ = ch.Reject(ssh.Prohibited, "no sessions")
		}
		serverErr <- nil
	}()

	conn, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeysCallback(client.Signers)},
		HostKeyCallback: ssh.FixedHostKey(hostSigner.PublicKey()),
	})
	if err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return err
	}
	return <-serverErr
}
