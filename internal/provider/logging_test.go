package provider

import (
	"bytes"
	"context"
	"log/slog"
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
	logger := newSlogger(ctx, redactor, &turns)
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
