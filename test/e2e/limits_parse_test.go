package e2e

import (
	"strings"
	"testing"
)

// TestParseLimits checks how the role's defaults become container limits:
// what the role leaves out stays out, and what the tests cannot use is an
// error naming the variable.
func TestParseLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		vars    map[string]any
		want    limits
		wantErr string
	}{
		{
			name: "memory and pids only",
			vars: map[string]any{"clock_web_memory": "128m", "clock_web_pids_limit": 64},
			want: limits{prefix: "clock_web", memory: 128 << 20, pids: 64},
		},
		{
			name: "all four",
			vars: map[string]any{
				"clock_web_memory": "128m", "clock_web_pids_limit": 64,
				"clock_web_cpus": 0.5, "clock_web_go_memory_limit": "96MiB",
			},
			want: limits{prefix: "clock_web", memory: 128 << 20, pids: 64, nanoCPUs: 5e8, goMemLimit: "96MiB"},
		},
		{
			name:    "no memory",
			vars:    map[string]any{"clock_web_pids_limit": 64},
			wantErr: "clock_web_memory is not set",
		},
		{
			name:    "bad memory",
			vars:    map[string]any{"clock_web_memory": "lots", "clock_web_pids_limit": 64},
			wantErr: `clock_web_memory="lots"`,
		},
		{
			name:    "no pids",
			vars:    map[string]any{"clock_web_memory": "128m"},
			wantErr: "clock_web_pids_limit is not set",
		},
		{
			name:    "bad cpus",
			vars:    map[string]any{"clock_web_memory": "128m", "clock_web_pids_limit": 64, "clock_web_cpus": "half"},
			wantErr: `clock_web_cpus="half"`,
		},
		{
			name:    "templated GOMEMLIMIT",
			vars:    map[string]any{"clock_web_memory": "128m", "clock_web_pids_limit": 64, "clock_web_go_memory_limit": "{{ x }}"},
			wantErr: "clock_web_go_memory_limit=\"{{ x }}\" is a template",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLimits(tt.vars, "clock_web")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseLimits: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLimits: %v", err)
			}
			if got != tt.want {
				t.Errorf("parseLimits: got %+v, want %+v", got, tt.want)
			}
		})
	}
}
