package vm

import (
	"bytes"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"os"
	"text/template"
)

// domainData is what the domain template sees.
type domainData struct {
	DomainType string // "qemu" (TCG) or "kvm"
	Name       string
	UUID       string // libvirt refuses to redefine a domain under another UUID
	MemoryMiB  int
	VCPUs      int
	Machine    string
	HostCPU    bool
	Disk       string
	MAC        string
	Network    string
	ConsoleLog string
}

// domainType maps an acceleration that has been decided (kvm or tcg) to libvirt's domain type.
func domainType(accel string) string {
	if accel == AccelKVM {
		return "kvm"
	}
	return "qemu"
}

// xmlEscape escapes a value for XML text or a quoted attribute.
func xmlEscape(v any) (string, error) {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(fmt.Sprint(v))); err != nil {
		return "", err
	}
	// EscapeText leaves the apostrophe alone; the template quotes attributes with it.
	return string(bytes.ReplaceAll(b.Bytes(), []byte("'"), []byte("&apos;"))), nil
}

// Render returns the domain XML for the given acceleration (kvm or tcg; auto must have
// been decided already) from c.Template, with the UUID derived from the name.
func Render(c Config, accel string) ([]byte, error) {
	return renderWithUUID(c, accel, nameUUID(c.Name))
}

func renderWithUUID(c Config, accel, uuid string) ([]byte, error) {
	src, err := os.ReadFile(c.Template)
	if err != nil {
		return nil, fmt.Errorf("read the domain template %s: %w (run from the repository root or set its path)", c.Template, err)
	}
	return renderTemplate(string(src), c, accel, uuid)
}

// nameUUID is a stable UUID for a domain name (version 5 layout over SHA-1), so every
// rendering of the same VM carries the same UUID and redefining it works.
func nameUUID(name string) string {
	sum := sha1.Sum([]byte("clock-app/vm:" + name))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func renderTemplate(src string, c Config, accel, uuid string) ([]byte, error) {
	if accel != AccelKVM && accel != AccelTCG {
		return nil, fmt.Errorf("render domain: acceleration %q is not decided (want kvm or tcg)", accel)
	}
	t, err := template.New("domain").Funcs(template.FuncMap{"xml": xmlEscape}).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse the domain template %s: %w", c.Template, err)
	}
	data := domainData{
		DomainType: domainType(accel),
		Name:       c.Name,
		UUID:       uuid,
		MemoryMiB:  c.MemoryMiB,
		VCPUs:      c.VCPUs,
		Machine:    c.Machine,
		HostCPU:    c.HostCPU && accel == AccelKVM,
		Disk:       c.overlayPath(),
		MAC:        c.MAC,
		Network:    c.Network,
		ConsoleLog: c.consoleLogPath(),
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render the domain template %s: %w", c.Template, err)
	}
	// A template edit that breaks the XML should fail here, not in virsh define.
	if err := xml.Unmarshal(b.Bytes(), new(struct{})); err != nil {
		return nil, fmt.Errorf("the domain template %s renders invalid XML: %w", c.Template, err)
	}
	return b.Bytes(), nil
}
