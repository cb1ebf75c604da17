package managerproc

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Metrics maps a series ("name{labels}" exactly as exposed) to its value.
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format.
func ParseMetrics(r io.Reader) Metrics {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}
