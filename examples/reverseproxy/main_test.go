package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())

	line := regexp.MustCompile(`(?m)^upstream ([AB]) \((127\.0\.0\.1:\d+)\) saw client certificate CN=(\S+) id=([0-9a-f]{64})$`)
	got := line.FindAllStringSubmatch(out.String(), -1)
	if len(got) != 2 {
		t.Fatalf("want one line per upstream, got %d:\n%s", len(got), out.String())
	}
	want := map[string]string{"A": "client-a", "B": "client-b"}
	for _, m := range got {
		if cn := want[m[1]]; m[3] != cn {
			t.Errorf("upstream %s saw %s, want %s", m[1], m[3], cn)
		}
		delete(want, m[1])
	}
	if len(want) != 0 {
		t.Errorf("no line for upstream(s) %v", want)
	}
	if got[0][2] == got[1][2] {
		t.Errorf("both upstreams at %s", got[0][2])
	}
	if got[0][4] == got[1][4] {
		t.Errorf("both upstreams saw certificate %s", got[0][4])
	}
}
