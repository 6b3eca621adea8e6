package release

import (
	"strings"
	"testing"
)

func TestParseRunRefusesWhatItCannotSend(t *testing.T) {
	set, spec := testSettings(), testSpec()
	ok := set.instanceArgs(spec, Hash(spec, set), API, 1)[1:]
	if _, err := parseRun(ok); err != nil {
		t.Fatalf("parseRun of the engine's own instance args: %v", err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{append([]string{"--privileged"}, ok...), "--privileged is not a flag the release engine uses"},
		{[]string{"--name", "x", "img"}, "want --detach"},
		{[]string{"--detach", "img"}, "want --detach, --name"},
		{[]string{"--detach", "--name", "x"}, "want --detach, --name and an image"},
		{[]string{"--detach", "--name", "x", "--memory", "lots", "img"}, "--memory lots"},
		{[]string{"--detach", "--name", "x", "--log-opt", "max-size=1m", "img"}, "--log-opt needs --log-driver"},
		{[]string{"--detach", "--name", "x", "--publish", "80", "img"}, "want [IP:]HOST_PORT:CONTAINER_PORT"},
		{[]string{"--detach", "--name", "x", "--network-alias", "a", "img"}, "--network-alias needs a named --network"},
		{[]string{"--detach", "--name", "x", "--cpus"}, "--cpus needs a value"},
	} {
		_, err := parseRun(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseRun(%q) = %v, want an error saying %q", tt.args, err, tt.want)
		}
	}
}

func TestBytesOf(t *testing.T) {
	for in, want := range map[string]int64{"16m": 16 << 20, "1g": 1 << 30, "512k": 512 << 10, "1000": 1000, "64M": 64 << 20, "10b": 10} {
		if got, err := bytesOf(in); err != nil || got != want {
			t.Errorf("bytesOf(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1m", "0", "1.5g"} {
		if _, err := bytesOf(in); err == nil {
			t.Errorf("bytesOf(%q) = nil error, want a refusal", in)
		}
	}
}

func TestDemuxJoinsFrames(t *testing.T) {
	frame := func(stream byte, s string) []byte {
		return append([]byte{stream, 0, 0, 0, 0, 0, 0, byte(len(s))}, s...)
	}
	b := append(frame(1, "out\n"), frame(2, "err\n")...)
	if got := string(demux(b)); got != "out\nerr\n" {
		t.Errorf("demux = %q, want both streams' lines in order", got)
	}
	if got := string(demux([]byte("plain tty output\n"))); got != "plain tty output\n" {
		t.Errorf("demux of an unframed stream = %q, want it unchanged", got)
	}
}
