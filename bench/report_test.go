package main

import (
	"strings"
	"testing"
)

func TestReplaceSection(t *testing.T) {
	doc := replaceSection("", "peers", "peers one\n")
	if !strings.Contains(doc, "<!-- bench:peers -->\npeers one\n<!-- /bench:peers -->\n") {
		t.Fatalf("new document:\n%s", doc)
	}
	doc = replaceSection(doc, "scale", "scale one")
	doc = replaceSection(doc, "peers", "peers two")
	if strings.Contains(doc, "peers one") || !strings.Contains(doc, "peers two") || !strings.Contains(doc, "scale one") {
		t.Fatalf("after replacing peers:\n%s", doc)
	}
	if strings.Index(doc, "peers two") > strings.Index(doc, "scale one") {
		t.Fatalf("a replaced section moved:\n%s", doc)
	}
}

func TestParseStatTicks(t *testing.T) {
	stat := "4242 (terraform (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 12 0 100 0 0"
	if got := parseStatTicks(stat); got != 287 {
		t.Fatalf("parseStatTicks = %d, want 250+37", got)
	}
}

func TestParsePerfScript(t *testing.T) {
	out := "terraform  4242 \n" +
		"\t  4a3b2c [unknown] (/usr/local/bin/terraform)\n" +
		"\t  4a0000 runtime.main+0x10 (/usr/local/bin/terraform)\n" +
		"\n" +
		"swapper     0 \n" +
		"\tffffffff822601ab pv_native_safe_halt ([kernel.kallsyms])\n"
	var comms []string
	var frames [][]perfFrame
	if err := parsePerfScript(strings.NewReader(out), func(comm string, fr []perfFrame) {
		comms, frames = append(comms, comm), append(frames, fr)
	}); err != nil {
		t.Fatal(err)
	}
	if len(comms) != 2 || comms[0] != "terraform" || comms[1] != "swapper" {
		t.Fatalf("samples %q", comms)
	}
	if f := frames[0]; len(f) != 2 || f[0].addr != "4a3b2c" || f[0].dso != "/usr/local/bin/terraform" || f[1].sym != "runtime.main+0x10" {
		t.Fatalf("frames %+v", f)
	}
	if got := frameName(frames[0][1], nil); got != "runtime.main" {
		t.Fatalf("frameName = %q", got)
	}
}

func TestGoPackage(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/hashicorp/terraform/internal/states.(*State).Module": "github.com/hashicorp/terraform/internal/states",
		"runtime.mallocgc":      "runtime",
		"encoding/json.Marshal": "encoding/json",
		"main.main":             "main",
	} {
		if got := goPackage(fn); got != want {
			t.Errorf("goPackage(%q) = %q, want %q", fn, got, want)
		}
	}
}
