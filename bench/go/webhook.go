// A plain Go net/http webhook doing the work of `deno task serve` per review,
// for `deno task bench` to compare against: decode the AdmissionReview and the
// pod fields the injector reads, build explicit JSON Patch ops (status
// annotation, log volume, a mount per app container, a native fluentd sidecar
// with its inline config), base64 them, answer, and log one JSON line per
// admission through a buffer flushed every 20 ms. Standard library only;
// HTTP/1.1 only, as kube-apiserver talks to a webhook behind a Service.
//
// Usage: go build -o webhook . && ./webhook -cert C -key K [-host 127.0.0.1] [-port 0]
// Prints {"msg":"listening","port":N}; exits 0 on SIGTERM.
package main

import (
	"bufio"
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

type container struct {
	Name         string  `json:"name"`
	VolumeMounts []mount `json:"volumeMounts"`
}

type pod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Containers     []container       `json:"containers"`
		InitContainers []json.RawMessage `json:"initContainers"`
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
	UID       string `json:"uid"`
	Allowed   bool   `json:"allowed"`
	PatchType string `json:"patchType,omitempty"`
	Patch     string `json:"patch,omitempty"`
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
	DurationMs float64 `json:"durationMs"`
}

type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

const fluentdConfig = "<source>\n  @type tail\n  path /var/log/app/*.log,/var/log/app/**/*.log\n" +
	"  pos_file /var/log/app/.fluentd-tail.pos\n  tag app.*\n  read_from_head true\n" +
	"  follow_inodes true\n  <parse>\n    @type none\n  </parse>\n</source>\n" +
	"<filter app.**>\n  @type record_transformer\n  <record>\n    pod \"#{ENV['POD_NAME']}\"\n" +
	"    namespace \"#{ENV['POD_NAMESPACE']}\"\n  </record>\n</filter>\n" +
	"<match app.**>\n  @type stdout\n</match>"

type fieldRef struct {
	FieldPath string `json:"fieldPath"`
}

type envVar struct {
	Name      string `json:"name"`
	ValueFrom struct {
		FieldRef fieldRef `json:"fieldRef"`
	} `json:"valueFrom"`
}

type resources struct {
	Requests map[string]string `json:"requests"`
	Limits   map[string]string `json:"limits"`
}

type securityContext struct {
	RunAsNonRoot             bool `json:"runAsNonRoot"`
	RunAsUser                int  `json:"runAsUser"`
	RunAsGroup               int  `json:"runAsGroup"`
	AllowPrivilegeEscalation bool `json:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
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
	VolumeMounts    []mount         `json:"volumeMounts"`
	RestartPolicy   string          `json:"restartPolicy"`
}

func fieldEnv(name, path string) envVar {
	e := envVar{Name: name}
	e.ValueFrom.FieldRef.FieldPath = path
	return e
}

// sidecar builds the agent per review, as the project does (nothing cached).
func sidecar() agent {
	a := agent{
		Name:            "fluentd",
		Image:           "fluent/fluentd:v1.17-1",
		ImagePullPolicy: "IfNotPresent",
		Command:         []string{"fluentd"},
		Args:            []string{"-c", "/dev/null", "-i", fluentdConfig},
		Env: []envVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("NODE_NAME", "spec.nodeName"),
		},
		Resources: resources{
			Requests: map[string]string{"cpu": "20m", "memory": "64Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
		},
		SecurityContext: securityContext{
			RunAsNonRoot: true, RunAsUser: 65534, RunAsGroup: 65534, AllowPrivilegeEscalation: false,
		},
		VolumeMounts:  []mount{{Name: "app-logs", MountPath: "/var/log/app"}},
		RestartPolicy: "Always",
	}
	a.SecurityContext.Capabilities.Drop = []string{"ALL"}
	a.SecurityContext.SeccompProfile.Type = "RuntimeDefault"
	return a
}

type volume struct {
	Name     string   `json:"name"`
	EmptyDir struct{} `json:"emptyDir"`
}

func patchFor(p *pod) []op {
	status := `{"version":1,"profile":"fluentd","sidecar":"fluentd","image":"fluent/fluentd:v1.17-1","volume":"app-logs","mode":"native"}`
	var ops []op
	if p.Metadata.Annotations == nil {
		ops = append(ops, op{"add", "/metadata/annotations", map[string]string{"sidecar-injector.io/status": status}})
	} else {
		ops = append(ops, op{"add", "/metadata/annotations/sidecar-injector.io~1status", status})
	}
	v := volume{Name: "app-logs"}
	if p.Spec.Volumes == nil {
		ops = append(ops, op{"add", "/spec/volumes", []volume{v}})
	} else {
		ops = append(ops, op{"add", "/spec/volumes/-", v})
	}
	m := mount{Name: "app-logs", MountPath: "/var/log/app"}
	for i, c := range p.Spec.Containers {
		if c.VolumeMounts == nil {
			ops = append(ops, op{"add", fmt.Sprintf("/spec/containers/%d/volumeMounts", i), []mount{m}})
		} else {
			ops = append(ops, op{"add", fmt.Sprintf("/spec/containers/%d/volumeMounts/-", i), m})
		}
	}
	if p.Spec.InitContainers == nil {
		ops = append(ops, op{"add", "/spec/initContainers", []agent{sidecar()}})
	} else {
		ops = append(ops, op{"add", "/spec/initContainers/-", sidecar()})
	}
	return ops
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
				patch, _ := json.Marshal(patchFor(&p))
				response.PatchType = "JSONPatch"
				response.Patch = base64.StdEncoding.EncodeToString(patch)
				decision = "injected"
			}
			name := p.Metadata.Name
			if name == "" && p.Metadata.GenerateName != "" {
				name = p.Metadata.GenerateName + "*"
			}
			log.line(admissionLine{
				Time: started.UTC().Format(time.RFC3339Nano), Level: "info", Msg: "admission",
				UID: req.UID, Namespace: req.Namespace, Pod: name, Operation: req.Operation,
				Kind: req.Kind.Kind, Decision: decision,
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
