// Package freeport hands out free loopback TCP ports to the suites and
// benchmarks that start nats-server, kube-apiserver or the manager as
// subprocesses.
package freeport

import "net"

// Ports returns n distinct free ports on 127.0.0.1. Every listener stays
// open until all are chosen, so two of them can never be the same port (two
// separate listen-and-close calls can be).
func Ports(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Port returns one free port on 127.0.0.1.
func Port() (int, error) {
	ports, err := Ports(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}
