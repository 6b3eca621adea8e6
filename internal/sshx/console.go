package sshx

import (
	"bufio"
	"bytes"
	"regexp"

	"golang.org/x/crypto/ssh"
)

// ConsoleHostKeyMarker starts the line a guest prints on its serial console for each SSH
// host key, followed by the key in authorized_keys form. Our image prints it at every boot
// (internal/vmimage); a classic image prints nothing, and the host key is then trusted on
// first use.
const ConsoleHostKeyMarker = "clock-ssh-host-key: "

// consoleEscape matches the terminal control sequences systemd and GRUB print.
var consoleEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// ConsoleHostKeys returns the host keys a serial console log shows, in order, without
// repeats. Lines may carry carriage returns and escape sequences, and the marker may
// follow other output on the same line; a line that does not parse is skipped.
func ConsoleHostKeys(log []byte) []ssh.PublicKey {
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.Index(line, []byte(ConsoleHostKeyMarker))
		if i < 0 {
			continue
		}
		rest := consoleEscape.ReplaceAll(bytes.ReplaceAll(line[i+len(ConsoleHostKeyMarker):], []byte("\r"), nil), nil)
		key, _, _, _, err := ssh.ParseAuthorizedKey(rest)
		if err != nil || containsKey(keys, key) {
			continue
		}
		keys = append(keys, key)
	}
	return keys
}
