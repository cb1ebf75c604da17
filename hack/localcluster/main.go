/*
Copyright 2026 The eventstream-operator authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command localcluster runs envtest's control plane (etcd and kube-apiserver,
// loopback only) until SIGINT or SIGTERM, keeping etcd's data in a directory
// that survives restarts, and writes an admin kubeconfig for it. It is the
// Kubernetes half of `make run-local` (hack/run-local.sh).
//
//	go run ./hack/localcluster -assets DIR -etcd-data-dir DIR -kubeconfig FILE
//
// The kubeconfig appears (atomically) once the API server serves the default
// namespace, and is removed on exit.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	// An own FlagSet: controller-runtime registers --kubeconfig on the global one.
	fs := flag.NewFlagSet("localcluster", flag.ExitOnError)
	assets := fs.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory holding the etcd and kube-apiserver binaries (hack/envtest/build.sh prints it)")
	dataDir := fs.String("etcd-data-dir", "", "etcd data directory, reused across runs (required)")
	kubeconfig := fs.String("kubeconfig", "", "where to write the admin kubeconfig (required)")
	_ = fs.Parse(os.Args[1:])
	if *assets == "" || *dataDir == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "localcluster: -assets, -etcd-data-dir and -kubeconfig are required")
		os.Exit(2)
	}
	if err := run(*assets, *dataDir, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(assets, dataDir, kubeconfig string) error {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	// Catch signals before starting anything, so that a Ctrl-C during the
	// start still stops what has started.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		AttachControlPlaneOutput: true, // into run-local's log file
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: dataDir}
	// envtest turns fsync off for throw-away test data; this data is kept.
	env.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "false")

	start := time.Now()
	started := make(chan error, 1)
	go func() { _, err := env.Start(); started <- err }()
	select {
	case err := <-started:
		if err != nil {
			_ = env.Stop()
			return fmt.Errorf("starting the control plane: %w", err)
		}
	case s := <-sigs:
		// env.Start cannot be interrupted, and it retries for minutes when
		// something is wrong: stop the processes it has started (each in its
		// own process group) and leave.
		fmt.Fprintf(os.Stderr, "localcluster: %s while starting, stopping\n", s)
		terminateChildren()
		return fmt.Errorf("interrupted by %s while starting", s)
	}

	tmp := filepath.Join(filepath.Dir(kubeconfig), "."+filepath.Base(kubeconfig)+".tmp")
	if err := os.WriteFile(tmp, env.KubeConfig, 0o600); err != nil {
		_ = env.Stop()
		return err
	}
	if err := os.Rename(tmp, kubeconfig); err != nil {
		_ = env.Stop()
		return err
	}
	fmt.Fprintf(os.Stderr, "localcluster: API server %s ready in %s (etcd data %s)\n",
		env.Config.Host, time.Since(start).Round(time.Millisecond), dataDir)
	return stop(env, kubeconfig, <-sigs)
}

func stop(env *envtest.Environment, kubeconfig string, s os.Signal) error {
	fmt.Fprintf(os.Stderr, "localcluster: %s, stopping kube-apiserver and etcd\n", s)
	_ = os.Remove(kubeconfig)
	return env.Stop()
}

// terminateChildren sends SIGTERM to this process's children (etcd and
// kube-apiserver), waits up to 10s for them to exit, then kills what is left.
func terminateChildren() {
	children := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...; comm may contain spaces and parentheses.
			i := bytes.LastIndexByte(stat, ')')
			if i < 0 {
				continue
			}
			f := bytes.Fields(stat[i+1:])
			if len(f) >= 2 && string(f[0]) != "Z" && string(f[1]) == strconv.Itoa(os.Getpid()) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	for _, pid := range children() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(children()) == 0 {
			return
		}
	}
	for _, pid := range children() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
