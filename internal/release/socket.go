package release

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Socket runs the engine's docker commands over the Docker Engine API on a Unix socket,
// instead of starting the docker CLI for each. On a TCG guest the CLI alone costs 0.7-1.5 s a
// command (docker inspect 0.8 s against 24 ms for the same GET on the socket; docker run
// 2.6-4 s against 1.6 s for create and start), and a switch issues about twenty.
//
// It understands exactly the commands the engine issues (the argv of `docker run` and the
// rest is the engine's one description of a container, which tests read and an operator can
// paste into a shell) and refuses any other flag or command, so a new flag the engine starts
// using fails its tests here rather than being dropped.
type Socket struct {
	Path string // /var/run/docker.sock

	once   sync.Once
	client *http.Client
}

// DockerSocket is where Debian's docker.io listens.
const DockerSocket = "/var/run/docker.sock"

func (s *Socket) http() *http.Client {
	s.once.Do(func() {
		s.client = &http.Client{Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", s.Path)
			},
		}}
	})
	return s.client
}

// apiError is the engine's answer to a request that failed: its status and message.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

// call sends one request; body is JSON-encoded unless it is an io.Reader. It returns the
// response body of a 2xx answer and an *apiError otherwise.
func (s *Socket) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/x-tar"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	u := "http://docker" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := s.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("the Docker Engine API on %s: %w", s.Path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		var m struct{ Message string }
		if json.Unmarshal(out, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(out))
		}
		return out, &apiError{Status: res.StatusCode, Message: m.Message}
	}
	return out, nil
}

// Run implements Docker: args are a docker command line as the engine writes them.
func (s *Socket) Run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("docker: no command")
	}
	out, err := s.run(ctx, stdin, args)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && !strings.Contains(ae.Message, "No such") {
			// The CLI's wording, which the engine and its callers match on.
			err = fmt.Errorf("No such container: %w", err)
		}
		return out, fmt.Errorf("docker %s: %w", strings.Join(args[:min(len(args), 2)], " "), err)
	}
	return out, nil
}

func (s *Socket) run(ctx context.Context, stdin io.Reader, args []string) (string, error) {
	cmd, rest := args[0], args[1:]
	if (cmd == "image" || cmd == "network") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "run":
		return s.runContainer(ctx, rest)
	case "start":
		return "", s.each(ctx, rest, false, func(n string) error {
			_, err := s.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(n)+"/start", nil, nil)
			return err
		})
	case "stop":
		if len(rest) < 2 || rest[0] != "--time" {
			return "", fmt.Errorf("stop: want --time SECONDS NAME...")
		}
		q := url.Values{"t": {rest[1]}}
		// Each drains on its own clock, so all at once, as the CLI does.
		return "", s.each(ctx, rest[2:], true, func(n string) error {
			_, err := s.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(n)+"/stop", q, nil)
			if ae := (*apiError)(nil); errors.As(err, &ae) && ae.Status == http.StatusNotModified {
				return nil // already stopped, which the CLI does not report either
			}
			return err
		})
	case "rm":
		if len(rest) < 1 || rest[0] != "--force" {
			return "", fmt.Errorf("rm: want --force NAME...")
		}
		return "", s.each(ctx, rest[1:], true, func(n string) error {
			_, err := s.call(ctx, http.MethodDelete, "/containers/"+url.PathEscape(n), url.Values{"force": {"1"}}, nil)
			return err
		})
	case "inspect":
		return s.inspect(ctx, rest, "/containers/")
	case "image inspect":
		return s.inspect(ctx, rest, "/images/")
	case "ps":
		return s.ps(ctx, rest)
	case "image rm":
		var b strings.Builder
		var errs []error
		for _, id := range rest {
			out, err := s.call(ctx, http.MethodDelete, "/images/"+url.PathEscape(id), nil, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			var items []struct{ Untagged, Deleted string }
			_ = json.Unmarshal(out, &items)
			for _, it := range items {
				if it.Untagged != "" {
					fmt.Fprintf(&b, "Untagged: %s\n", it.Untagged)
				}
				if it.Deleted != "" {
					fmt.Fprintf(&b, "Deleted: %s\n", it.Deleted)
				}
			}
		}
		return b.String(), errors.Join(errs...)
	case "import":
		// import --change CHANGE - REPO:TAG
		if len(rest) != 4 || rest[0] != "--change" || rest[2] != "-" || stdin == nil {
			return "", fmt.Errorf("import: want --change CHANGE - REPO:TAG with the tar on stdin")
		}
		repo, tag, _ := strings.Cut(rest[3], ":")
		out, err := s.call(ctx, http.MethodPost, "/images/create", url.Values{"fromSrc": {"-"}, "repo": {repo}, "tag": {tag}, "changes": {rest[1]}}, stdin)
		if err != nil {
			return "", err
		}
		return "", streamError(out)
	case "load":
		out, err := s.call(ctx, http.MethodPost, "/images/load", url.Values{"quiet": {"1"}}, stdin)
		if err != nil {
			return "", err
		}
		return "", streamError(out)
	case "network ls":
		out, err := s.call(ctx, http.MethodGet, "/networks", nil, nil)
		if err != nil {
			return "", err
		}
		var nets []struct{ Name string }
		if err := json.Unmarshal(out, &nets); err != nil {
			return "", err
		}
		var b strings.Builder
		for _, n := range nets {
			b.WriteString(n.Name + "\n")
		}
		return b.String(), nil
	case "network create":
		body := map[string]any{"CheckDuplicate": true, "Labels": map[string]string{}}
		for len(rest) > 1 {
			switch rest[0] {
			case "--internal":
				body["Internal"] = true
				rest = rest[1:]
			case "--label":
				k, v, _ := strings.Cut(rest[1], "=")
				body["Labels"].(map[string]string)[k] = v
				rest = rest[2:]
			default:
				return "", fmt.Errorf("network create: unknown flag %q", rest[0])
			}
		}
		if len(rest) != 1 {
			return "", fmt.Errorf("network create: want one name, got %q", rest)
		}
		body["Name"] = rest[0]
		_, err := s.call(ctx, http.MethodPost, "/networks/create", nil, body)
		return "", err
	case "network connect":
		if len(rest) != 2 {
			return "", fmt.Errorf("network connect: want NETWORK CONTAINER")
		}
		_, err := s.call(ctx, http.MethodPost, "/networks/"+url.PathEscape(rest[0])+"/connect", nil, map[string]string{"Container": rest[1]})
		return "", err
	case "network rm":
		return "", s.each(ctx, rest, false, func(n string) error {
			_, err := s.call(ctx, http.MethodDelete, "/networks/"+url.PathEscape(n), nil, nil)
			return err
		})
	}
	return "", fmt.Errorf("not a command the release engine issues: %q", args)
}

// each runs f for every name, at once or in turn, and joins the failures.
func (s *Socket) each(ctx context.Context, names []string, parallel bool, f func(string) error) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		if !parallel {
			errs[i] = f(n)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(n)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", names[i], err)
		}
	}
	return errors.Join(errs...)
}

// streamError is the error of a streamed answer (load, import): a line with "error" in it.
func streamError(out []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Error != "" {
			return errors.New(m.Error)
		}
	}
	return nil
}

// inspect renders --format over each object's inspect JSON, as docker inspect does: the
// found ones are printed, and a missing one is an error.
func (s *Socket) inspect(ctx context.Context, args []string, prefix string) (string, error) {
	if len(args) < 3 || args[0] != "--format" {
		return "", fmt.Errorf("inspect: want --format TEMPLATE NAME...")
	}
	tpl, err := parseFormat(args[1])
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var errs []error
	for _, n := range args[2:] {
		if n == "" {
			return b.String(), errors.New("inspect: an empty name")
		}
		out, err := s.call(ctx, http.MethodGet, prefix+url.PathEscape(n)+"/json", nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("No such object: %s: %w", n, err))
			continue
		}
		d := json.NewDecoder(bytes.NewReader(out))
		d.UseNumber() // a PID prints as 4194304, not 4.194304e+06
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			return b.String(), err
		}
		if c, ok := v["Config"].(map[string]any); ok && c["Labels"] == nil {
			c["Labels"] = map[string]any{} // index of no labels is "", as in the CLI
		}
		if err := tpl.Execute(&b, v); err != nil {
			return b.String(), err
		}
		b.WriteByte('\n')
	}
	return b.String(), errors.Join(errs...)
}

// parseFormat parses a --format template as the CLI does: \t and \n written out stand for
// a tab and a newline.
func parseFormat(f string) (*template.Template, error) {
	f = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(f)
	return template.New("format").Option("missingkey=zero").Parse(f)
}

// psRow is one container of docker ps, with the methods its --format templates call.
type psRow struct{ c psContainer }

// psContainer is what GET /containers/json says of one container.
type psContainer struct {
	Names  []string
	Labels map[string]string
	State  string
}

func (r psRow) Names() string {
	var ns []string
	for _, n := range r.c.Names {
		ns = append(ns, strings.TrimPrefix(n, "/"))
	}
	return strings.Join(ns, ",")
}
func (r psRow) Label(k string) string { return r.c.Labels[k] }
func (r psRow) State() string         { return r.c.State }

// ps is docker ps --all --filter label=K --format TEMPLATE.
func (s *Socket) ps(ctx context.Context, args []string) (string, error) {
	if len(args) != 5 || args[0] != "--all" || args[1] != "--filter" || !strings.HasPrefix(args[2], "label=") || args[3] != "--format" {
		return "", fmt.Errorf("ps: want --all --filter label=KEY --format TEMPLATE, got %q", args)
	}
	tpl, err := parseFormat(args[4])
	if err != nil {
		return "", err
	}
	filters, _ := json.Marshal(map[string][]string{"label": {strings.TrimPrefix(args[2], "label=")}})
	out, err := s.call(ctx, http.MethodGet, "/containers/json", url.Values{"all": {"1"}, "filters": {string(filters)}}, nil)
	if err != nil {
		return "", err
	}
	var rows []psContainer
	if err := json.Unmarshal(out, &rows); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range rows {
		if err := tpl.Execute(&b, psRow{r}); err != nil {
			return b.String(), err
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// Logs implements Docker: the last lines of a container's stdout and stderr.
func (s *Socket) Logs(ctx context.Context, name string, lines int) (string, error) {
	out, err := s.call(ctx, http.MethodGet, "/containers/"+url.PathEscape(name)+"/logs",
		url.Values{"stdout": {"1"}, "stderr": {"1"}, "tail": {strconv.Itoa(lines)}}, nil)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(demux(out))), nil
}

// demux joins the frames of a non-TTY container's log stream: each is an 8-byte header
// (stream, 3 zero bytes, big-endian length) and its payload.
func demux(b []byte) []byte {
	var out []byte
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b[4:8]))
		if b[0] > 2 || b[1] != 0 || b[2] != 0 || b[3] != 0 || 8+n > len(b) {
			return append(out, b...) // not framed: a TTY container's raw stream
		}
		out = append(out, b[8:8+n]...)
		b = b[8+n:]
	}
	return append(out, b...)
}

// runContainer is docker run --detach: create (on the one network given) and start.
func (s *Socket) runContainer(ctx context.Context, args []string) (string, error) {
	id, err := s.create(ctx, args)
	if err != nil {
		return "", err
	}
	if _, err := s.call(ctx, http.MethodPost, "/containers/"+id+"/start", nil, nil); err != nil {
		// docker run leaves a created container behind too; the engine removes it by name.
		return "", err
	}
	return id + "\n", nil
}

// create is the create half of docker run's args; it returns the container's ID.
func (s *Socket) create(ctx context.Context, args []string) (string, error) {
	c, err := parseRun(args)
	if err != nil {
		return "", err
	}
	out, err := s.call(ctx, http.MethodPost, "/containers/create", url.Values{"name": {c.name}}, c.body)
	if err != nil {
		return "", err
	}
	var created struct{ Id string }
	if err := json.Unmarshal(out, &created); err != nil || created.Id == "" {
		return "", fmt.Errorf("create answered %q: %v", out, err)
	}
	return created.Id, nil
}

// runRequest is a parsed docker run: the container's name and the create request's body.
type runRequest struct {
	name string
	body map[string]any
}

// parseRun turns the flags of docker run that the engine writes into a create request, as
// the CLI would send it. Any other flag is an error.
func parseRun(args []string) (runRequest, error) {
	cfg := map[string]any{"Labels": map[string]string{}}
	host := map[string]any{}
	var env, capDrop, secOpt []string
	logOpts := map[string]string{}
	sysctls := map[string]string{}
	health := map[string]any{}
	var name, network, alias string
	detached := false
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "--"); i++ {
		flag := args[i]
		switch flag {
		case "--detach":
			detached = true
			continue
		case "--read-only":
			host["ReadonlyRootfs"] = true
			continue
		}
		if i+1 >= len(args) {
			return runRequest{}, fmt.Errorf("run: %s needs a value", flag)
		}
		i++
		v := args[i]
		var err error
		switch flag {
		case "--name":
			name = v
		case "--label":
			k, val, _ := strings.Cut(v, "=")
			cfg["Labels"].(map[string]string)[k] = val
		case "--env":
			env = append(env, v)
		case "--user":
			cfg["User"] = v
		case "--network":
			network = v
		case "--network-alias":
			alias = v
		case "--publish":
			err = publish(cfg, host, v)
		case "--sysctl":
			k, val, _ := strings.Cut(v, "=")
			sysctls[k] = val
		case "--memory":
			host["Memory"], err = bytesOf(v)
		case "--cpus":
			var f float64
			f, err = strconv.ParseFloat(v, 64)
			host["NanoCpus"] = int64(f * 1e9)
		case "--pids-limit":
			host["PidsLimit"], err = strconv.ParseInt(v, 10, 64)
		case "--stop-timeout":
			cfg["StopTimeout"], err = strconv.Atoi(v)
		case "--cap-drop":
			capDrop = append(capDrop, v)
		case "--security-opt":
			secOpt = append(secOpt, v)
		case "--restart":
			p, count, _ := strings.Cut(v, ":")
			rp := map[string]any{"Name": p}
			if count != "" {
				rp["MaximumRetryCount"], err = strconv.Atoi(count)
			}
			host["RestartPolicy"] = rp
		case "--log-driver":
			host["LogConfig"] = map[string]any{"Type": v, "Config": logOpts}
		case "--log-opt":
			k, val, _ := strings.Cut(v, "=")
			logOpts[k] = val
		case "--health-interval", "--health-timeout", "--health-start-period":
			var d time.Duration
			d, err = time.ParseDuration(v)
			health[map[string]string{"--health-interval": "Interval", "--health-timeout": "Timeout", "--health-start-period": "StartPeriod"}[flag]] = int64(d)
		case "--health-retries":
			health["Retries"], err = strconv.Atoi(v)
		default:
			return runRequest{}, fmt.Errorf("run: %s is not a flag the release engine uses", flag)
		}
		if err != nil {
			return runRequest{}, fmt.Errorf("run: %s %s: %w", flag, v, err)
		}
	}
	if !detached || name == "" || i >= len(args) {
		return runRequest{}, fmt.Errorf("run: want --detach, --name and an image, got %q", args)
	}
	cfg["Image"] = args[i]
	if cmd := args[i+1:]; len(cmd) > 0 {
		cfg["Cmd"] = cmd
	}
	if len(env) > 0 {
		cfg["Env"] = env
	}
	if len(logOpts) > 0 && host["LogConfig"] == nil {
		return runRequest{}, fmt.Errorf("run: --log-opt needs --log-driver")
	}
	if len(health) > 0 {
		// No test of its own: the image's check, as docker run keeps it.
		cfg["Healthcheck"] = health
	}
	if capDrop != nil {
		host["CapDrop"] = capDrop
	}
	if secOpt != nil {
		host["SecurityOpt"] = secOpt
	}
	if len(sysctls) > 0 {
		host["Sysctls"] = sysctls
	}
	if network != "" {
		host["NetworkMode"] = network
	}
	cfg["HostConfig"] = host
	if alias != "" {
		if network == "" || strings.HasPrefix(network, "container:") {
			return runRequest{}, fmt.Errorf("run: --network-alias needs a named --network")
		}
		cfg["NetworkingConfig"] = map[string]any{"EndpointsConfig": map[string]any{network: map[string]any{"Aliases": []string{alias}}}}
	}
	return runRequest{name: name, body: cfg}, nil
}

// publish adds --publish [IP:]HOST:CONTAINER (tcp) to the create request.
func publish(cfg, host map[string]any, v string) error {
	parts := strings.Split(v, ":")
	var ip, hp, cp string
	switch len(parts) {
	case 2:
		hp, cp = parts[0], parts[1]
	case 3:
		ip, hp, cp = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("want [IP:]HOST_PORT:CONTAINER_PORT")
	}
	for _, p := range []string{hp, cp} {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("port %q: %w", p, err)
		}
	}
	port := cp + "/tcp"
	cfg["ExposedPorts"] = map[string]any{port: struct{}{}}
	host["PortBindings"] = map[string]any{port: []map[string]string{{"HostIp": ip, "HostPort": hp}}}
	return nil
}

// bytesOf parses docker's memory sizes: a number with an optional b, k, m or g.
func bytesOf(v string) (int64, error) {
	mult := int64(1)
	s := strings.ToLower(v)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'b':
			s = s[:n-1]
		case 'k':
			mult, s = 1<<10, s[:n-1]
		case 'm':
			mult, s = 1<<20, s[:n-1]
		case 'g':
			mult, s = 1<<30, s[:n-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size such as 64m")
	}
	return n * mult, nil
}
