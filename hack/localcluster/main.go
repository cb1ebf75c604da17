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
// The kubeconfig (of a system:masters user) appears atomically once the API
// server serves the default namespace, and is removed on exit. The control
// plane is the shared harness's (internal/testutil/controlplane).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
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
	// Catch signals before starting anything, so that a Ctrl-C during the
	// start still stops what has started.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	start := time.Now()
	type result struct {
		plane *controlplane.Plane
		err   error
	}
	started := make(chan result, 1)
	go func() {
		p, err := controlplane.Start(controlplane.Options{
			Dir: filepath.Dir(kubeconfig), Kubeconfig: kubeconfig, Assets: assets,
			EtcdDataDir:  dataDir,
			AttachOutput: true, // into run-local's log file
		})
		started <- result{p, err}
	}()
	var plane *controlplane.Plane
	select {
	case r := <-started:
		if r.err != nil {
			return r.err
		}
		plane = r.plane
	case s := <-sigs:
		// Starting cannot be interrupted, and it retries for minutes when
		// something is wrong: stop the processes it has started and leave.
		fmt.Fprintf(os.Stderr, "localcluster: %s while starting, stopping\n", s)
		proc.TerminateChildren(10 * time.Second)
		return fmt.Errorf("interrupted by %s while starting", s)
	}
	fmt.Fprintf(os.Stderr, "localcluster: API server %s ready in %s (etcd data %s)\n",
		plane.Host(), time.Since(start).Round(time.Millisecond), dataDir)
	s := <-sigs
	fmt.Fprintf(os.Stderr, "localcluster: %s, stopping kube-apiserver and etcd\n", s)
	return plane.Stop() // removes the kubeconfig too
}
