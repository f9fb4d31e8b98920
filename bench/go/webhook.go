// A plain Go net/http webhook doing the work of `deno task serve` per review,
// for `deno task bench` to compare against: decode the AdmissionReview and the
// pod fields the injector reads, build explicit JSON Patch ops (status
// annotation, log volume, a mount per app container, a native fluentd sidecar
// with its metrics port chosen and its config rendered per review into an
// annotation, the filter plugin in a second one — the server's patch byte for
// byte for the default config), base64 them, answer, and log one JSON line per
// admission through a buffer flushed every 20 ms. Standard library only;
// HTTP/1.1 only, as kube-apiserver talks to a webhook behind a Service.
//
// Usage: go build -o webhook . && ./webhook -cert C -key K [-host 127.0.0.1] [-port 0]
// Prints {"msg":"listening","port":N}; exits 0 on SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const maxBody = 7 << 20

type mount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type port struct {
	ContainerPort int `json:"containerPort"`
}

type container struct {
	Name         string  `json:"name"`
	VolumeMounts []mount `json:"volumeMounts"`
	Ports        []port  `json:"ports"`
}

// initContainer is what the injector reads of an init container: its ports.
type initContainer struct {
	Ports []port `json:"ports"`
}

type pod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool            `json:"hostNetwork"`
		Containers     []container     `json:"containers"`
		InitContainers []initContainer `json:"initContainers"`
		Volumes        []struct {
			Name string `json:"name"`
		} `json:"volumes"`
	} `json:"spec"`
}

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID       string `json:"uid"`
		Operation string `json:"operation"`
		Namespace string `json:"namespace"`
		Kind      struct {
			Group, Version, Kind string
		} `json:"kind"`
		Object json.RawMessage `json:"object"`
	} `json:"request"`
}

type admissionResponse struct {
	UID       string   `json:"uid"`
	Allowed   bool     `json:"allowed"`
	PatchType string   `json:"patchType,omitempty"`
	Patch     string   `json:"patch,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

type answer struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Response   admissionResponse `json:"response"`
}

type admissionLine struct {
	Time       string  `json:"time"`
	Level      string  `json:"level"`
	Msg        string  `json:"msg"`
	UID        string  `json:"uid"`
	Namespace  string  `json:"namespace"`
	Pod        string  `json:"pod"`
	Operation  string  `json:"operation"`
	Kind       string  `json:"kind"`
	Decision   string  `json:"decision"`
	Reason     string  `json:"reason"`
	Profile    string  `json:"profile,omitempty"`
	Mode       string  `json:"mode,omitempty"`
	DurationMs float64 `json:"durationMs"`
}

type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// The default profile's settings, as lib/config/defaults.ts has them.
const (
	logDir     = "/var/log/app"
	stateDir   = "/var/lib/sidecar-injector"
	image      = "fluent/fluentd:v1.17-1"
	stateLimit = "288Mi" // bufferLimit 256Mi + 32Mi
	status     = `{"version":1,"profile":"fluentd","sidecar":"fluentd","image":"` + image + `","volume":"app-logs","mode":"native"}`
	configKey  = "sidecar-injector.io/agent-config"
	filesKey   = "sidecar-injector.io/agent-files"
	// lib/agent/http.ts: Fluentd's monitor_agent port, its port name, what the probes ask.
	metricsPort     = 24220
	metricsPortName = "agent-metrics"
	metricsPortEnv  = "AGENT_METRICS_PORT"
	probePath       = "/api/plugins.json"
	preStopSeconds  = "2"
	pluginType      = "sidecar_record"
	pluginFile      = "plugin/filter_sidecar_record.rb"
)

// fluentdPlugin mirrors FLUENTD_PLUGIN of lib/agent/fluentd_plugin.ts (with
// RESERVED_KEYS and APP_FIELDS_KEY of lib/agent/pipeline.ts filled in): the
// same text in every pod, so a constant.
const fluentdPlugin = `# Rendered by sidecar-injector; see docs/log-path.md "Records".
require 'json'
require 'fluent/plugin/filter'

module Fluent::Plugin
  class SidecarRecordFilter < Filter
    Fluent::Plugin.register_filter('` + pluginType + `', self)

    config_param :parser, :enum, list: [:none, :json], default: :none
    RESERVED = ["pod","namespace","node","container","file","time","log","app_fields"].freeze
    APP_FIELDS = 'app_fields'.freeze

    def filter(tag, time, record)
      line = record['log']
      return record unless line.is_a?(String)
      line = SidecarRecordFilter.utf8(line)
      record['log'] = line
      return record unless @parser == :json && line.lstrip.start_with?('{')
      fields = begin
        JSON.parse(line)
      rescue JSON::ParserError
        nil
      end
      return record unless fields.is_a?(Hash)
      out = {}
      moved = {}
      fields.each { |k, v| (RESERVED.include?(k) ? moved : out)[k] = v }
      out[APP_FIELDS] = moved unless moved.empty?
      record.each { |k, v| out[k] = v unless k == 'log' }
      out
    end

    def self.utf8(text)
      s = text.dup.force_encoding(Encoding::UTF_8)
      return s if s.valid_encoding?
      s.scrub { |bad| bad.bytes.map { |b| (0xE000 + b).chr(Encoding::UTF_8) }.join }
    end
  end
end
`

// fluentdConfig renders the agent config per review from the app containers'
// names, line for line what lib/agent/fluentd.ts renders for the default
// profile (parser none, stdout output, 256 MiB buffer; monitor_agent when
// the pod gets a metrics port).
func fluentdConfig(containers []string, metrics bool) string {
	var b strings.Builder
	b.Grow(3200)
	line := func(s ...string) {
		for _, p := range s {
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	line("<source>")
	line("  @type tail")
	line("  @id app_logs")
	line("  path ", logDir, "/**/*.log")
	line("  pos_file ", stateDir, "/tail.pos")
	line("  pos_file_compaction_interval 1h")
	line("  path_key file")
	line("  tag app")
	line("  read_from_head true")
	line("  follow_inodes true")
	line("  refresh_interval 1")
	line("  rotate_wait 30")
	line("  max_line_size 1048576")
	line("  read_bytes_limit_per_second 8m")
	line("  <parse>")
	line("    @type none")
	line("    message_key log")
	line("  </parse>")
	line("</source>")
	if metrics {
		line("<source>")
		line("  @type monitor_agent")
		line("  @id monitor")
		line("  bind 0.0.0.0")
		line("  include_config false")
		line(`  port "#{ENV['`, metricsPortEnv, `']}"`)
		line("</source>")
	}
	line("<filter app>")
	line("  @type ", pluginType)
	line("</filter>")
	line("<filter app.**>")
	line("  @type record_transformer")
	if len(containers) != 1 {
		line("  enable_ruby true")
	}
	line("  <record>")
	if len(containers) == 1 {
		line("    container ", containers[0])
	} else {
		// The container a file is named after: <logDir>/<name>.log or <logDir>/<name>/...
		b.WriteString("    container ${")
		for _, name := range containers {
			re := "^" + regexp.QuoteMeta(logDir) + "/" + regexp.QuoteMeta(name) + `(\.log$|/)`
			b.WriteString(`record["file"].to_s.match?(/`)
			b.WriteString(strings.ReplaceAll(re, "/", `\/`))
			b.WriteString(`/) ? "`)
			b.WriteString(name)
			b.WriteString(`" : `)
		}
		line(`record["file"]}`)
	}
	line(`    pod "#{ENV['POD_NAME']}"`)
	line(`    namespace "#{ENV['POD_NAMESPACE']}"`)
	line(`    node "#{ENV['NODE_NAME']}"`)
	line("  </record>")
	line("</filter>")
	line("<match app.**>")
	line("  @type file")
	line("  path /dev/stdout")
	line(`  path_suffix ""`)
	line("  append true")
	line("  <format>")
	line("    @type json")
	line("  </format>")
	line("  <inject>")
	line("    time_key time")
	line("    time_type string")
	line("    time_format %Y-%m-%dT%H:%M:%S.%NZ")
	line("    utc true")
	line("  </inject>")
	line("  <buffer []>")
	line("    @type file")
	line("    path ", stateDir, "/buffer")
	line("    flush_mode interval")
	line("    flush_interval 1s")
	line("    flush_at_shutdown true")
	line("    flush_thread_count 1")
	line("    retry_forever true")
	line("    retry_type exponential_backoff")
	line("    retry_wait 1s")
	line("    retry_max_interval 30s")
	line("    chunk_limit_size 2m")
	line("    total_limit_size 256m")
	line("    overflow_action block")
	line("  </buffer>")
	b.WriteString("</match>")
	return b.String()
}

type fieldRef struct {
	FieldPath string `json:"fieldPath"`
}

type valueFrom struct {
	FieldRef fieldRef `json:"fieldRef"`
}

type envVar struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	ValueFrom *valueFrom `json:"valueFrom,omitempty"`
}

type requests struct {
	CPU              string `json:"cpu"`
	Memory           string `json:"memory"`
	EphemeralStorage string `json:"ephemeral-storage"`
}

type limits struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

type resources struct {
	Requests requests `json:"requests"`
	Limits   limits   `json:"limits"`
}

type securityContext struct {
	RunAsNonRoot             bool `json:"runAsNonRoot"`
	RunAsUser                int  `json:"runAsUser"`
	RunAsGroup               int  `json:"runAsGroup"`
	AllowPrivilegeEscalation bool `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   bool `json:"readOnlyRootFilesystem"`
	Capabilities             struct {
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}

type agentMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type containerPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

type httpGet struct {
	Path string `json:"path"`
	Port string `json:"port"`
}

type probe struct {
	HTTPGet          httpGet `json:"httpGet"`
	PeriodSeconds    int     `json:"periodSeconds"`
	TimeoutSeconds   int     `json:"timeoutSeconds"`
	FailureThreshold int     `json:"failureThreshold"`
}

type lifecycle struct {
	PreStop struct {
		Exec struct {
			Command []string `json:"command"`
		} `json:"exec"`
	} `json:"preStop"`
}

// agent is the sidecar container, typed as a Go webhook would have it (corev1.Container).
type agent struct {
	Name            string          `json:"name"`
	Image           string          `json:"image"`
	ImagePullPolicy string          `json:"imagePullPolicy"`
	Command         []string        `json:"command"`
	Args            []string        `json:"args"`
	Env             []envVar        `json:"env"`
	Resources       resources       `json:"resources"`
	SecurityContext securityContext `json:"securityContext"`
	VolumeMounts    []agentMount    `json:"volumeMounts"`
	Ports           []containerPort `json:"ports,omitempty"`
	StartupProbe    *probe          `json:"startupProbe,omitempty"`
	LivenessProbe   *probe          `json:"livenessProbe,omitempty"`
	Lifecycle       *lifecycle      `json:"lifecycle,omitempty"`
	RestartPolicy   string          `json:"restartPolicy"`
}

func fieldEnv(name, path string) envVar {
	return envVar{Name: name, ValueFrom: &valueFrom{fieldRef{path}}}
}

// sidecar builds the agent per review (nothing cached); port 0: no metrics
// endpoint and no probes (lib/agent/http.ts).
func sidecar(port int) agent {
	a := agent{
		Name:            "fluentd",
		Image:           image,
		ImagePullPolicy: "IfNotPresent",
		Command:         []string{"sh", "-c"},
		Args:            []string{`mkdir -p -m 0700 "$TMPDIR" && exec fluentd -c /fluentd/etc/fluent.conf -p /fluentd/etc/plugin -o /dev/stderr`},
		Env: []envVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("NODE_NAME", "spec.nodeName"),
			{Name: "TMPDIR", Value: stateDir + "/tmp"},
			{Name: "SERVERENGINE_SOCKETMANAGER_SOCK_DIR", Value: stateDir + "/tmp"},
		},
		Resources: resources{
			Requests: requests{CPU: "20m", Memory: "96Mi", EphemeralStorage: stateLimit},
			Limits:   limits{CPU: "500m", Memory: "256Mi"},
		},
		SecurityContext: securityContext{
			RunAsNonRoot: true, RunAsUser: 65534, RunAsGroup: 65534, ReadOnlyRootFilesystem: true,
		},
		VolumeMounts: []agentMount{
			{Name: "app-logs", MountPath: logDir, ReadOnly: true},
			{Name: "app-logs-state", MountPath: stateDir},
			{Name: "app-logs-config", MountPath: "/fluentd/etc", ReadOnly: true},
		},
		RestartPolicy: "Always",
	}
	a.SecurityContext.Capabilities.Drop = []string{"ALL"}
	a.SecurityContext.SeccompProfile.Type = "RuntimeDefault"
	if port != 0 {
		a.Env = append(a.Env, envVar{Name: metricsPortEnv, Value: strconv.Itoa(port)})
		a.Ports = []containerPort{{Name: metricsPortName, ContainerPort: port, Protocol: "TCP"}}
		get := httpGet{Path: probePath, Port: metricsPortName}
		a.StartupProbe = &probe{HTTPGet: get, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 120}
		a.LivenessProbe = &probe{HTTPGet: get, PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 3}
	}
	a.Lifecycle = &lifecycle{}
	a.Lifecycle.PreStop.Exec.Command = []string{"sleep", preStopSeconds}
	return a
}

type emptyDir struct {
	SizeLimit string `json:"sizeLimit"`
}

type downwardItem struct {
	Path     string   `json:"path"`
	FieldRef fieldRef `json:"fieldRef"`
}

type downwardAPI struct {
	Items []downwardItem `json:"items"`
}

type volume struct {
	Name        string       `json:"name"`
	EmptyDir    *emptyDir    `json:"emptyDir,omitempty"`
	DownwardAPI *downwardAPI `json:"downwardAPI,omitempty"`
}

type annotations struct {
	Status      string `json:"sidecar-injector.io/status"`
	AgentConfig string `json:"sidecar-injector.io/agent-config"`
	AgentFiles  string `json:"sidecar-injector.io/agent-files"`
}

// choosePort is lib/inject/metrics_port.ts: the default port, moved past the
// ports the pod's containers declare (with a warning); 0 for a hostNetwork pod.
func choosePort(p *pod, warnings *[]string) int {
	if p.Spec.HostNetwork {
		*warnings = append(*warnings, "sidecar-injector: hostNetwork pod: the agent serves no metrics and has no probes (its port would be the node's)")
		return 0
	}
	taken := map[int]bool{}
	for _, c := range p.Spec.Containers {
		for _, q := range c.Ports {
			taken[q.ContainerPort] = true
		}
	}
	for _, c := range p.Spec.InitContainers {
		for _, q := range c.Ports {
			taken[q.ContainerPort] = true
		}
	}
	port := metricsPort
	for taken[port] && port < 65535 {
		port++
	}
	if taken[port] {
		port = 1024
	}
	for taken[port] {
		port++
	}
	if port != metricsPort {
		*warnings = append(*warnings, fmt.Sprintf("sidecar-injector: port %d is already declared by a container; the agent's metrics listen on %d (port name %s)", metricsPort, port, metricsPortName))
	}
	return port
}

// patchFor builds the patch the server answers for the default config, byte
// for byte (bench checks compare them): status, agent config and agent files
// annotations, log/state/config volumes, a mount per app container, the
// native sidecar. Stand-in limits: no annotations read but the status, no
// name or mount-path collisions handled, the agent never takes over an app's user.
func patchFor(p *pod, warnings *[]string) []op {
	names := make([]string, len(p.Spec.Containers))
	for i, c := range p.Spec.Containers {
		names[i] = c.Name
	}
	port := choosePort(p, warnings)
	config := fluentdConfig(names, port != 0)
	var ops []op
	if p.Metadata.Annotations == nil {
		ops = append(ops, op{"add", "/metadata/annotations", annotations{status, config, fluentdPlugin}})
	} else {
		ops = append(ops, op{"add", "/metadata/annotations/sidecar-injector.io~1status", status})
		ops = append(ops, op{"add", "/metadata/annotations/sidecar-injector.io~1agent-config", config})
		ops = append(ops, op{"add", "/metadata/annotations/sidecar-injector.io~1agent-files", fluentdPlugin})
	}
	volumes := []volume{
		{Name: "app-logs", EmptyDir: &emptyDir{"1Gi"}},
		{Name: "app-logs-state", EmptyDir: &emptyDir{stateLimit}},
		{Name: "app-logs-config", DownwardAPI: &downwardAPI{[]downwardItem{
			{Path: "fluent.conf", FieldRef: fieldRef{"metadata.annotations['" + configKey + "']"}},
			{Path: pluginFile, FieldRef: fieldRef{"metadata.annotations['" + filesKey + "']"}},
		}}},
	}
	if p.Spec.Volumes == nil {
		ops = append(ops, op{"add", "/spec/volumes", volumes})
	} else {
		for _, v := range volumes {
			ops = append(ops, op{"add", "/spec/volumes/-", v})
		}
	}
	m := mount{Name: "app-logs", MountPath: logDir}
	for i, c := range p.Spec.Containers {
		if c.VolumeMounts == nil {
			ops = append(ops, op{"add", fmt.Sprintf("/spec/containers/%d/volumeMounts", i), []mount{m}})
		} else {
			ops = append(ops, op{"add", fmt.Sprintf("/spec/containers/%d/volumeMounts/-", i), m})
		}
	}
	if p.Spec.InitContainers == nil {
		ops = append(ops, op{"add", "/spec/initContainers", []agent{sidecar(port)}})
	} else {
		ops = append(ops, op{"add", "/spec/initContainers/-", sidecar(port)})
	}
	return ops
}

// marshal is json.Marshal without HTML escaping, as JavaScript's JSON.stringify writes.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// logger buffers JSON lines and writes them every 20 ms, as the project's logger does.
type logger struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *logger) line(v any) {
	b, _ := json.Marshal(v)
	l.mu.Lock()
	l.w.Write(b)
	l.w.WriteByte('\n')
	l.mu.Unlock()
}

func (l *logger) flush() {
	l.mu.Lock()
	l.w.Flush()
	l.mu.Unlock()
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(b)
}

func main() {
	cert := flag.String("cert", "", "certificate file")
	key := flag.String("key", "", "key file")
	host := flag.String("host", "127.0.0.1", "listen address")
	port := flag.Int("port", 0, "port (0: any)")
	flag.Parse()
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log := &logger{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	go func() {
		for range time.Tick(20 * time.Millisecond) {
			log.flush()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		if r.Method != http.MethodPost {
			fail(w, 405, "use POST")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			fail(w, 413, err.Error())
			return
		}
		var rv review
		if err := json.Unmarshal(body, &rv); err != nil || rv.Request == nil || rv.Kind != "AdmissionReview" {
			fail(w, 400, "not an AdmissionReview")
			return
		}
		req := rv.Request
		response := admissionResponse{UID: req.UID, Allowed: true}
		decision := "skipped"
		if req.Operation == "CREATE" && req.Kind.Kind == "Pod" {
			var p pod
			if err := json.Unmarshal(req.Object, &p); err != nil {
				fail(w, 400, "request.object is not a pod")
				return
			}
			if _, done := p.Metadata.Annotations["sidecar-injector.io/status"]; !done {
				patch := marshal(patchFor(&p, &response.Warnings))
				response.PatchType = "JSONPatch"
				response.Patch = base64.StdEncoding.EncodeToString(patch)
				decision = "injected"
			}
			profile, mode, reason := "fluentd", "native", ""
			if decision != "injected" {
				profile, mode, reason = "", "", "already injected"
			}
			name := p.Metadata.Name
			if name == "" && p.Metadata.GenerateName != "" {
				name = p.Metadata.GenerateName + "*"
			}
			log.line(admissionLine{
				Time: started.UTC().Format(time.RFC3339Nano), Level: "info", Msg: "admission",
				UID: req.UID, Namespace: req.Namespace, Pod: name, Operation: req.Operation,
				Kind: req.Kind.Kind, Decision: decision, Reason: reason, Profile: profile, Mode: mode,
				DurationMs: float64(time.Since(started).Microseconds()) / 1000,
			})
		}
		out, _ := json.Marshal(answer{APIVersion: rv.APIVersion, Kind: "AdmissionReview", Response: response})
		w.Header().Set("content-type", "application/json")
		w.Write(out)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// An empty map turns HTTP/2 off: HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}
	fmt.Printf("{\"msg\":\"listening\",\"port\":%d}\n", ln.Addr().(*net.TCPAddr).Port)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		log.flush()
		os.Exit(0)
	}()
	if err := srv.ServeTLS(ln, "", ""); err != nil && !strings.Contains(err.Error(), "closed") {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
