package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// detach starts d's command in its own session, so it outlives mage, logging to a file.
func (e Env) detach(sudo []string, d Daemon) error {
	if err := os.MkdirAll(e.LogDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(e.LogDir, d.Name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	argv := append(append([]string{}, sudo...), d.Command...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.Name, err)
	}
	// The daemon may fork (libvirtd -d); reap the direct child when it exits so it does not
	// linger as a zombie while mage runs.
	go cmd.Wait()
	return nil
}
