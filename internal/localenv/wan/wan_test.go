package wan

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Profile
		err  bool
	}{
		{in: "", want: Profile{}},
		{in: "off", want: Profile{}},
		{in: "40ms,200Mbit", want: Profile{RoundTrip: 40 * time.Millisecond, Rate: 200_000_000}},
		{in: "80ms, 100mbit, 1Gbit", want: Profile{RoundTrip: 80 * time.Millisecond, Rate: 100_000_000, HostRate: 1_000_000_000}},
		{in: "2ms,512kbit/s", want: Profile{RoundTrip: 2 * time.Millisecond, Rate: 512_000}},
		{in: "cross-region", want: Profiles[1].Profile},
		{in: "40ms", err: true},
		{in: "fast,200Mbit", err: true},
		{in: "40ms,lots", err: true},
		{in: "40ms,1Mbit,2Mbit,3Mbit", err: true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if again, err := Parse(got.String()); err != nil || again != got {
				t.Errorf("Parse(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
			}
		}
	}
}

// within fails the test when got is off want by more than a fifth.
func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got < want*0.8 || got > want*1.2 {
		t.Errorf("%s = %.3g, want %.3g ± 20%%", what, got, want)
	} else {
		t.Logf("%s = %.3g (want %.3g)", what, got, want)
	}
}

// shapedServer listens on loopback behind profile p and hands every
// accepted connection to serve.
func shapedServer(t *testing.T, p Profile, serve func(net.Conn)) string {
	t.Helper()
	raw, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewShaper(p).Listen(raw)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return raw.Addr().String()
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

// A byte sent through the WAN comes back after the round trip; a new
// connection's first exchange pays one more for TCP's handshake.
func TestRoundTrip(t *testing.T) {
	const rtt = 200 * time.Millisecond
	addr := shapedServer(t, Profile{RoundTrip: rtt}, echo)
	c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func() time.Duration {
		t0 := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	within(t, "first exchange (s)", exchange().Seconds(), 2*rtt.Seconds())
	var rtts []time.Duration
	for range 5 {
		rtts = append(rtts, exchange())
	}
	slices.Sort(rtts)
	within(t, "round trip, median of 5 (s)", rtts[2].Seconds(), rtt.Seconds())
}

// Bytes flow at the profile's rate in each direction, and a long round trip
// does not lower it (the delay line holds many chunks in flight).
func TestRate(t *testing.T) {
	const (
		rate = 40_000_000 // bits/s: 5 MB/s
		size = 8 << 20    // 1.7 s at that rate
	)
	p := Profile{RoundTrip: 100 * time.Millisecond, Rate: rate}
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	received := make(chan float64, 1)
	addr := shapedServer(t, p, func(c net.Conn) {
		received <- timedRead(t, c, size) // the client's upload
		_, _ = c.Write(payload)           // then the download
	})
	c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	within(t, "upload rate (bit/s)", <-received, rate)
	within(t, "download rate (bit/s)", timedRead(t, c, size), rate)
}

// timedRead reads n bytes from r and returns the rate from the first byte to
// the last in bits per second, so the delay before the first does not count.
func timedRead(t *testing.T, r io.Reader, n int) float64 {
	buf := make([]byte, 64<<10)
	first, err := io.ReadAtLeast(r, buf, 1)
	if err != nil {
		t.Error(err)
		return 0
	}
	t0, got := time.Now(), first
	for got < n {
		k, err := r.Read(buf)
		got += k
		if err != nil {
			t.Error(err)
			return 0
		}
	}
	return float64(n-first) * 8 / time.Since(t0).Seconds()
}

// Connections to one endpoint share its HostRate: two at once each get
// about half.
func TestHostRate(t *testing.T) {
	const (
		rate = 40_000_000
		size = 5 << 20
	)
	p := Profile{RoundTrip: 20 * time.Millisecond, Rate: rate, HostRate: rate}
	payload := make([]byte, size)
	addr := shapedServer(t, p, func(c net.Conn) { _, _ = c.Write(payload) })
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0) - 3*p.RoundTrip/2 // the handshake and the first byte's way
	within(t, "two connections together (bit/s)", 2*size*8/elapsed.Seconds(), rate)
}

// net/http works over the WAN (its read deadlines and background reads
// included): a body arrives whole, and a second request on the same
// connection costs one round trip.
func TestHTTP(t *testing.T) {
	const rtt = 100 * time.Millisecond
	body := make([]byte, 300<<10)
	_, _ = rand.Read(body)
	raw, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(NewShaper(Profile{RoundTrip: rtt, Rate: 100_000_000}).Listen(raw)) }()
	t.Cleanup(func() { _ = srv.Close() })
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	get := func() time.Duration {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+raw.Addr().String()+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body: %d bytes, %v; want the %d sent", len(got), err, len(body))
		}
		return time.Since(t0)
	}
	get()
	if d := get(); d < rtt*8/10 || d > 2*rtt {
		t.Errorf("a second request on the connection took %s, want about one round trip (%s) plus 24 ms of body", d, rtt)
	}
}
