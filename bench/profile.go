package main

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profile is a system-wide perf profile of one step: CPU samples by
// process, and where terraform and the provider spend theirs.
type profile struct {
	command   string // how to take it again
	samples   int    // non-idle samples
	secs      float64
	byProcess map[string]int
	funcs     map[string]map[string]int // process kind -> function -> samples with it on the stack
	leaves    map[string]map[string]int // process kind -> package of the running function -> samples
}

// perfHz is the sampling frequency: low enough not to disturb a 2-core
// machine, high enough for minutes-long steps.
const perfHz = 99

// startPerf records every CPU's call stacks until the returned stop is
// called; stop turns the recording into a profile.
func (b *bench) startPerf(ctx context.Context, key string) (func() (*profile, error), error) {
	out := filepath.Join(b.work, "perf-"+strings.ReplaceAll(key, " ", "-")+".data")
	args := []string{"record", "-F", fmt.Sprint(perfHz), "-a", "-g", "-o", out}
	cmd := exec.CommandContext(ctx, b.tools.perf, args...) //nolint:gosec // the bench's own perf
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	return func() (*profile, error) {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait() // perf ends on the interrupt with a status of its own
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return nil, errors.New("perf record did not stop")
		}
		secs := time.Since(t0).Seconds()
		defer os.Remove(out)
		prof, err := b.readPerf(ctx, out)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, stderr.String())
		}
		prof.secs = secs
		prof.command = "perf " + strings.Join(args[:len(args)-2], " ") + " -o perf.data, during the step; perf script; go tool addr2line for terraform's stripped frames"
		return prof, nil
	}, nil
}

// perfKind names the process a sample ran in.
func perfKind(comm string) string {
	switch {
	case comm == "swapper":
		return ""
	case comm == "terraform":
		return kindTerraform
	case strings.HasPrefix(comm, "terraform-provi"):
		return kindProvider
	case strings.HasPrefix(comm, "moto") || strings.HasPrefix(comm, "python"):
		return "moto (ECR API)"
	case strings.HasPrefix(comm, "docker-registry") || strings.HasPrefix(comm, "registry"):
		return "docker-registry (both registries)"
	case comm == "bench":
		return "bench (proxies, S3, fake GitLab)"
	}
	return "other"
}

// perfFrame is one stack frame of perf script's output.
type perfFrame struct{ addr, sym, dso string }

// parsePerfScript reads perf script's default callchain output: a header
// line per sample ("comm pid ...") and one indented line per frame
// ("\t<hex> <symbol> (<dso>)"), leaf first.
func parsePerfScript(r io.Reader, each func(comm string, frames []perfFrame)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var comm string
	var frames []perfFrame
	flush := func() {
		if comm != "" {
			each(comm, frames)
		}
		comm, frames = "", nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == '\t' || line[0] == ' ':
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			fr := perfFrame{addr: f[0], dso: strings.Trim(f[len(f)-1], "()")}
			if len(f) >= 3 {
				fr.sym = strings.Join(f[1:len(f)-1], " ")
			}
			frames = append(frames, fr)
		default:
			flush()
			comm = strings.Fields(line)[0]
		}
	}
	flush()
	return sc.Err()
}

func (b *bench) readPerf(ctx context.Context, data string) (*profile, error) {
	cmd := exec.CommandContext(ctx, b.tools.perf, "script", "-i", data, "-F", "comm,pid,ip,sym,dso") //nolint:gosec // the bench's own perf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	type rawSample struct {
		kind   string
		frames []perfFrame
	}
	var raw []rawSample
	prof := &profile{byProcess: map[string]int{}, funcs: map[string]map[string]int{}, leaves: map[string]map[string]int{}}
	perr := parsePerfScript(out, func(comm string, frames []perfFrame) {
		kind := perfKind(comm)
		if kind == "" {
			return
		}
		prof.samples++
		prof.byProcess[kind]++
		if kind == kindTerraform || kind == kindProvider {
			raw = append(raw, rawSample{kind, frames})
		}
	})
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	names := b.symbolize(ctx, raw2frames(raw, func(s rawSample) []perfFrame { return s.frames }))
	for _, s := range raw {
		if prof.funcs[s.kind] == nil {
			prof.funcs[s.kind], prof.leaves[s.kind] = map[string]int{}, map[string]int{}
		}
		seen := map[string]bool{}
		leaf := true
		for _, fr := range s.frames {
			name := frameName(fr, names)
			if name == "" || !strings.HasPrefix(fr.dso, "/") {
				continue // the kernel's frames, or an unknown one
			}
			if leaf {
				prof.leaves[s.kind][goPackage(name)]++
				leaf = false
			}
			if !seen[name] {
				seen[name] = true
				prof.funcs[s.kind][name]++
			}
		}
	}
	return prof, nil
}

func raw2frames[T any](xs []T, f func(T) []perfFrame) []perfFrame {
	var out []perfFrame
	for _, x := range xs {
		out = append(out, f(x)...)
	}
	return out
}

func frameName(fr perfFrame, names map[string]string) string {
	if fr.sym != "" && fr.sym != "[unknown]" {
		return strings.SplitN(fr.sym, "+", 2)[0]
	}
	return names[fr.dso+"@"+fr.addr]
}

// symbolize names the frames perf could not: terraform's release binary is
// stripped of its symbol table, but Go's own line table (.gopclntab), which
// go tool addr2line reads, is still there.
func (b *bench) symbolize(ctx context.Context, frames []perfFrame) map[string]string {
	byBinary := map[string][]string{}
	seen := map[string]bool{}
	for _, fr := range frames {
		if fr.sym != "" && fr.sym != "[unknown]" || !strings.HasPrefix(fr.dso, "/") {
			continue
		}
		if k := fr.dso + "@" + fr.addr; !seen[k] {
			seen[k] = true
			byBinary[fr.dso] = append(byBinary[fr.dso], fr.addr)
		}
	}
	names := map[string]string{}
	for bin, addrs := range byBinary {
		toVA, err := fileOffsetToVA(bin)
		if err != nil {
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "tool", "addr2line", bin)
		var in strings.Builder
		for _, a := range addrs {
			off, err := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
			if err != nil {
				off = 0
			}
			fmt.Fprintf(&in, "0x%x\n", toVA(off))
		}
		cmd.Stdin = strings.NewReader(in.String())
		out, err := cmd.Output()
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		for i, a := range addrs {
			if 2*i < len(lines) && lines[2*i] != "?" {
				names[bin+"@"+a] = lines[2*i]
			}
		}
	}
	return names
}

// fileOffsetToVA maps the addresses perf script prints for frames it cannot
// name, offsets into the binary's file, to the virtual addresses
// addr2line takes, through the binary's loadable segments.
func fileOffsetToVA(bin string) (func(uint64) uint64, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type segment struct{ off, size, vaddr uint64 }
	var segs []segment
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			segs = append(segs, segment{p.Off, p.Filesz, p.Vaddr})
		}
	}
	return func(off uint64) uint64 {
		for _, s := range segs {
			if off >= s.off && off < s.off+s.size {
				return off - s.off + s.vaddr
			}
		}
		return off
	}, nil
}

// goPackage is the package path of a Go function name
// ("github.com/hashicorp/terraform/internal/states.(*State).Module" ->
// "github.com/hashicorp/terraform/internal/states").
func goPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

type count struct {
	name string
	n    int
}

func top(m map[string]int, n int) []count {
	var out []count
	for k, v := range m {
		out = append(out, count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].name < out[j].name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
