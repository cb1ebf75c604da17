// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 for
// envtest (the upstream binary lives in a module with local replaces, so it
// cannot be installed with `go install`).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
