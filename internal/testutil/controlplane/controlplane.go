// Package controlplane runs envtest's etcd and kube-apiserver for the
// end-to-end and chaos tests, the operator benchmark and `make run-local`:
// an admin (system:masters) kubeconfig written to a file for bin/manager,
// kubectl and helm, a client for the caller, the CRDs installed on request,
// and, for a restartable plane, kube-apiserver and etcd killed and started
// again on the same ports, data and certificates.
package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

// Scheme holds client-go's kinds and the operator's.
var Scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(Scheme); err != nil {
		panic(err)
	}
	if err := eventsv1.AddToScheme(Scheme); err != nil {
		panic(err)
	}
}

// Options says how to start a control plane.
type Options struct {
	// Dir holds the kubeconfig (and, Restartable, etcd's data and the API
	// server's certificates). Required.
	Dir string
	// Kubeconfig is where the admin kubeconfig is written (atomically, once
	// the API server answers); default Dir/kubeconfig.
	Kubeconfig string
	// Assets is the directory of kube-apiserver and etcd; default
	// $KUBEBUILDER_ASSETS.
	Assets string
	// CRDs installs config/crd/bases.
	CRDs bool
	// Restartable keeps etcd's data and the certificates in Dir, so that
	// KillServers and StartServers bring the same cluster back.
	Restartable bool
	// EtcdDataDir keeps etcd's data there, fsynced, across runs.
	EtcdDataDir string
	// User names the admin user; default "admin".
	User string
	// AttachOutput sends kube-apiserver's and etcd's output to this
	// process's stdout and stderr.
	AttachOutput bool
}

// Plane is a running control plane.
type Plane struct {
	Env        *envtest.Environment
	Dir        string
	Kubeconfig string       // admin kubeconfig file
	Config     *rest.Config // admin, QPS 500 / Burst 1000
	Client     client.WithWatch
}

// Start starts etcd and kube-apiserver as o says and waits until they
// answer. On error, whatever started is stopped.
func Start(o Options) (*Plane, error) {
	if o.Dir == "" {
		return nil, errors.New("controlplane: Options.Dir is required")
	}
	if o.Assets == "" && os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("controlplane: KUBEBUILDER_ASSETS is not set (hack/envtest/build.sh prints the directory; the make targets set it)")
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	}
	if o.User == "" {
		o.User = "admin"
	}
	for _, d := range []string{o.Dir, filepath.Dir(o.Kubeconfig)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	p := &Plane{Dir: o.Dir, Kubeconfig: o.Kubeconfig, Env: &envtest.Environment{
		BinaryAssetsDirectory:    o.Assets,
		AttachControlPlaneOutput: o.AttachOutput,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}}
	if o.CRDs {
		crds, err := repo.CRDDir()
		if err != nil {
			return nil, err
		}
		p.Env.CRDDirectoryPaths, p.Env.ErrorIfCRDPathMissing = []string{crds}, true
	}
	if o.Restartable {
		etcdDir, certDir := filepath.Join(o.Dir, "etcd"), filepath.Join(o.Dir, "apiserver")
		for _, d := range []string{etcdDir, certDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
		p.Env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
		p.Env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	}
	if o.EtcdDataDir != "" {
		if err := os.MkdirAll(o.EtcdDataDir, 0o700); err != nil {
			return nil, err
		}
		p.Env.ControlPlane.Etcd = &envtest.Etcd{DataDir: o.EtcdDataDir}
		// envtest turns fsync off for throw-away test data; this data is kept.
		p.Env.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "false")
	}
	if _, err := p.Env.Start(); err != nil {
		_ = p.Env.Stop()
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	if err := p.admin(o.User); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// admin adds the system:masters user, writes its kubeconfig and builds the
// client.
func (p *Plane) admin(name string) error {
	user, err := p.Env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p.Kubeconfig), "."+filepath.Base(p.Kubeconfig)+".tmp")
	if err := os.WriteFile(tmp, kc, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.Kubeconfig); err != nil {
		return err
	}
	p.Config = rest.CopyConfig(user.Config())
	p.Config.QPS, p.Config.Burst = 500, 1000
	p.Client, err = client.NewWithWatch(p.Config, client.Options{Scheme: Scheme})
	return err
}

// Host is the API server's URL.
func (p *Plane) Host() string { return p.Env.Config.Host }

// Stop stops kube-apiserver and etcd and removes the kubeconfig.
func (p *Plane) Stop() error {
	_ = os.Remove(p.Kubeconfig)
	return p.Env.Stop()
}

// KillServers SIGKILLs kube-apiserver and etcd, as a crash would, keeping
// etcd's data and the API server's certificates (restartable planes only).
// envtest's own Stop sends SIGTERM, which kube-apiserver took more than
// 30 s to honour with a manager connected.
func (p *Plane) KillServers() error {
	for _, d := range []string{filepath.Join(p.Dir, "apiserver"), filepath.Join(p.Dir, "etcd")} {
		var pids []int
		for _, c := range proc.Children() {
			if bytes.Contains(c.Cmdline, []byte(d)) {
				pids = append(pids, c.Pid)
			}
		}
		if len(pids) != 1 {
			return fmt.Errorf("%d processes of this program name %s, want 1 (is the plane restartable?)", len(pids), d)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			return err
		}
	}
	// envtest reaps them and sees them gone.
	return errors.Join(p.Env.ControlPlane.APIServer.Stop(), p.Env.ControlPlane.Etcd.Stop())
}

// StartServers starts etcd and kube-apiserver again, on the ports, data and
// certificates of the first start: clients and kubeconfigs keep working.
func (p *Plane) StartServers() error {
	if err := p.Env.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("restarting etcd: %w", err)
	}
	if err := p.Env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w", err)
	}
	return nil
}
