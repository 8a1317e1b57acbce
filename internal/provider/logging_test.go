package provider

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-log/tflog"
	"github.com/hashicorp/terraform-plugin-log/tflogtest"

	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// TestSlogHandlerConcurrentAndRedacted logs from many goroutines at once, as
// regclient does, through a context with masks (which tflog applies by
// rewriting the context's field map): no crash, and no secret in the output.
func TestSlogHandlerConcurrentAndRedacted(t *testing.T) {
	var out bytes.Buffer
	var outMu sync.Mutex
	ctx := tflogtest.RootLogger(context.Background(), &lockedWriter{w: &out, mu: &outMu})
	ctx = tflog.SetField(ctx, "tf_rpc", "ApplyResourceChange")
	redactor := redact.New("glpat-secret-token")
	var turns sync.Mutex
	ctx = (&providerData{redactor: redactor}).logContext(ctx)
	logger := newSlogger(ctx, redactor, &turns, everyRecord)
	url := "http://localhost:1/prod-us-east-1-starport-layer-bucket/x?X-Amz-Security-Token=IQoSESSION&X-Amz-Signature=deadbeefcafe"
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			logger.Log(context.Background(), slog.LevelDebug-4, "reg http request", slog.String("req-url", url), slog.Int("n", i))
		}()
		go func() {
			defer wg.Done()
			logInTurn(&turns, func() { tflog.Info(ctx, "copied tag", map[string]any{"token": "glpat-secret-token", "n": i}) })
		}()
	}
	wg.Wait()
	text := out.String()
	if strings.Count(text, "reg http request") != 50 || strings.Count(text, "copied tag") != 50 {
		t.Fatalf("lines lost:\n%.2000s", text)
	}
	for _, secret := range []string{"deadbeefcafe", "IQoSESSION", "glpat-secret-token"} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Terraform keeps provider lines at TF_LOG_PROVIDER, else TF_LOG; regclient's
// records below what it keeps are not built, and none when neither is set.
func TestRegclientLogFloor(t *testing.T) {
	const regTrace, regInfo = slog.LevelDebug - 4, slog.LevelInfo
	cases := []struct {
		name string
		env  map[string]string
		// which of regclient's trace, debug, info, warn and error records pass
		want [5]bool
	}{
		{"nothing set", nil, [5]bool{}},
		{"TF_LOG=off", map[string]string{"TF_LOG": "off"}, [5]bool{}},
		{"TF_LOG=trace", map[string]string{"TF_LOG": "trace"}, [5]bool{true, true, true, true, true}},
		{"TF_LOG=JSON", map[string]string{"TF_LOG": "JSON"}, [5]bool{true, true, true, true, true}},
		{"TF_LOG=debug", map[string]string{"TF_LOG": "debug"}, [5]bool{false, false, true, true, true}},
		{"TF_LOG=info", map[string]string{"TF_LOG": "info"}, [5]bool{false, false, false, true, true}},
		{"TF_LOG=error", map[string]string{"TF_LOG": "error"}, [5]bool{false, false, false, false, true}},
		{"an unknown level reads as TRACE", map[string]string{"TF_LOG": "verbose"}, [5]bool{true, true, true, true, true}},
		{"TF_LOG_PROVIDER over TF_LOG", map[string]string{"TF_LOG": "trace", "TF_LOG_PROVIDER": "warn"}, [5]bool{false, false, false, true, true}},
		{"TF_LOG_PROVIDER alone", map[string]string{"TF_LOG_PROVIDER": "debug"}, [5]bool{false, false, true, true, true}},
		{"acceptance test log file", map[string]string{"TF_ACC_LOG_PATH": "/tmp/x.log"}, [5]bool{true, true, true, true, true}},
	}
	levels := [5]slog.Level{regTrace, slog.LevelDebug, regInfo, slog.LevelWarn, slog.LevelError}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &tflogHandler{floor: regclientLogFloor(func(k string) string { return c.env[k] })}
			for i, l := range levels {
				if got := h.Enabled(context.Background(), l); got != c.want[i] {
					t.Errorf("Enabled(%v) = %v, want %v", l, got, c.want[i])
				}
			}
		})
	}
}

// Below the floor, regclient's records never reach the log.
func TestSlogHandlerBelowFloorNotWritten(t *testing.T) {
	var out bytes.Buffer
	ctx := tflogtest.RootLogger(context.Background(), &out)
	var turns sync.Mutex
	logger := newSlogger(ctx, redact.New(), &turns, logFloor{level: slog.LevelInfo})
	logger.Log(context.Background(), slog.LevelDebug-4, "reg http request headers")
	logger.Info("reg http request")
	text := out.String()
	if strings.Contains(text, "headers") || !strings.Contains(text, "reg http request") {
		t.Fatalf("log with the floor at regclient's INFO:\n%s", text)
	}
}

// With no log level set for Terraform, the provider's loggers are turned
// off, except one the user set; with TF_LOG set, none is touched.
func TestSilenceUnreadLogs(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"nothing set", map[string]string{}, map[string]string{
			"TF_LOG_SDK": "OFF", "TF_LOG_SDK_PROTO": "OFF", "TF_LOG_SDK_FRAMEWORK": "OFF", "TF_LOG_PROVIDER_IMAGESYNC": "OFF"}},
		{"a level the user set is kept", map[string]string{"TF_LOG_SDK_FRAMEWORK": "trace"}, map[string]string{
			"TF_LOG_SDK": "OFF", "TF_LOG_SDK_PROTO": "OFF", "TF_LOG_SDK_FRAMEWORK": "trace", "TF_LOG_PROVIDER_IMAGESYNC": "OFF"}},
		{"TF_LOG set", map[string]string{"TF_LOG": "debug"}, map[string]string{"TF_LOG": "debug"}},
		{"TF_LOG_PROVIDER set", map[string]string{"TF_LOG_PROVIDER": "trace"}, map[string]string{"TF_LOG_PROVIDER": "trace"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := maps.Clone(c.env)
			SilenceUnreadLogs(func(k string) string { return env[k] }, func(k, v string) error { env[k] = v; return nil })
			if !maps.Equal(env, c.want) {
				t.Errorf("environment = %v, want %v", env, c.want)
			}
		})
	}
}
