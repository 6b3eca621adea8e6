// Package sshx holds the SSH plumbing of the deploy: the deploy key, waiting for a VM's SSH
// server, pinning its host key in a known_hosts file and running commands over a verified
// connection.
package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/fsx"
)

// Key is a loaded private key with the paths it came from.
type Key struct {
	Signer        ssh.Signer
	PrivatePath   string
	PublicPath    string // empty when the key was loaded without a .pub file beside it
	AuthorizedKey []byte // the public key in authorized_keys format, ending in a newline
}

// OpenKey loads the private key at path, generating it first (EnsureKey) when generate is
// set: config.Config.DeployKey's two results.
func OpenKey(path string, generate bool) (*Key, error) {
	if generate {
		return EnsureKey(path)
	}
	return LoadKey(path)
}

// EnsureKey loads the private key at priv, generating an ed25519 pair (OpenSSH private key,
// mode 0600, and priv + ".pub") first when none exists. Its folder is created with mode 0700.
func EnsureKey(priv string) (*Key, error) {
	if _, err := os.Stat(priv); errors.Is(err, fs.ErrNotExist) {
		if err := generateKey(filepath.Dir(priv), priv); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("deploy key %s: %w", priv, err)
	}
	k, err := LoadKey(priv)
	if err != nil {
		return nil, err
	}
	if k.PublicPath == "" {
		// A private key without its .pub (deleted by hand): write it back, ssh(1) and
		// the image builder both look for it.
		pub := priv + ".pub"
		if err := fsx.WriteFileAtomic(pub, k.AuthorizedKey, 0o644); err != nil {
			return nil, fmt.Errorf("write public key %s: %w", pub, err)
		}
		k.PublicPath = pub
	}
	return k, nil
}

func generateKey(dir, priv string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory %s: %w", dir, err)
	}
	pubKey, privKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(privKey, "clock-deploy")
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pubKey)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	// The .pub goes first: a crash in between leaves a key pair that EnsureKey repairs
	// instead of a private key another run would overwrite.
	if err := fsx.WriteFileAtomic(priv+".pub", authorizedLine(sshPub, "clock-deploy"), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	if err := fsx.WriteFileAtomic(priv, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	return nil
}

// LoadKey reads a user-supplied private key (OpenSSH, PKCS#1/PKCS#8 PEM: ed25519, RSA,
// ECDSA). Encrypted keys are refused with a hint to use an agent or a decrypted copy. When
// path + ".pub" exists it is recorded in PublicPath.
func LoadKey(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SSH private key %s: %w (check the key path setting, e.g. CLOCK_VM_KEY)", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("SSH private key %s is encrypted with a passphrase: use an unencrypted copy (ssh-keygen -p -N '' -f COPY) or point to another key", path)
	case err != nil:
		return nil, fmt.Errorf("SSH private key %s is not a private key this tool can read (OpenSSH or PEM ed25519/RSA/ECDSA expected): %w", path, err)
	}
	k := &Key{
		Signer:        signer,
		PrivatePath:   path,
		AuthorizedKey: authorizedLine(signer.PublicKey(), ""),
	}
	if _, err := os.Stat(path + ".pub"); err == nil {
		k.PublicPath = path + ".pub"
	}
	return k, nil
}

// authorizedLine renders key in authorized_keys format with an optional comment.
func authorizedLine(key ssh.PublicKey, comment string) []byte {
	line := ssh.MarshalAuthorizedKey(key) // ends in "\n"
	if comment == "" {
		return line
	}
	return append(line[:len(line)-1], []byte(" "+comment+"\n")...)
}
