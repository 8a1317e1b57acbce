package provider

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// tflogHandler routes regclient's slog output into Terraform's log, so
// registry requests show in TF_LOG=DEBUG and TRACE and nowhere else. Every
// line passes the redactor first: regclient logs whole request URLs and
// response headers, and ECR's layer downloads are pre-signed S3 URLs.
type tflogHandler struct {
	ctx      context.Context //nolint:containedctx // tflog keeps its sink in the context
	redactor *redact.Redactor
	turns    *sync.Mutex
	floor    logFloor
	attrs    []slog.Attr
	group    string
}

func newSlogger(ctx context.Context, redactor *redact.Redactor, turns *sync.Mutex, floor logFloor) *slog.Logger {
	ctx = tflog.NewSubsystem(ctx, "regclient")
	ctx = tflog.SubsystemMaskFieldValuesWithFieldKeys(ctx, "regclient", "token", "password", "Authorization", "pass")
	ctx = tflog.SubsystemMaskAllFieldValuesRegexes(ctx, "regclient", redact.Patterns...)
	ctx = tflog.SubsystemMaskMessageRegexes(ctx, "regclient", redact.Patterns...)
	return slog.New(&tflogHandler{ctx: ctx, redactor: redactor, turns: turns, floor: floor})
}

// logFloor is the least severe regclient record anyone will read; off when
// none will.
type logFloor struct {
	level slog.Level
	off   bool
}

// everyRecord keeps all of regclient's records, its trace level included.
var everyRecord = logFloor{level: math.MinInt32}

// regclientLogFloor reads the level Terraform keeps the provider's lines at:
// TF_LOG_PROVIDER, else TF_LOG (the provider inherits Terraform's
// environment; acceptance tests with TF_ACC_LOG_PATH log at TRACE). With
// neither set Terraform drops every line, so regclient's per-request records
// are not built at all: building and redacting them only to be dropped cost
// a tenth of a no-op plan's CPU.
func regclientLogFloor(getenv func(string) string) logFloor {
	level := strings.ToUpper(getenv("TF_LOG_PROVIDER"))
	if level == "" {
		level = strings.ToUpper(getenv("TF_LOG"))
	}
	if level == "" && getenv("TF_ACC_LOG_PATH") != "" {
		level = "TRACE"
	}
	// regclient's INFO records are written at DEBUG and its lower ones at
	// TRACE (tflogHandler.log), so each Terraform level maps one step up.
	switch level {
	case "", "OFF":
		return logFloor{off: true}
	case "DEBUG":
		return logFloor{level: slog.LevelInfo}
	case "INFO", "WARN":
		return logFloor{level: slog.LevelWarn}
	case "ERROR":
		return logFloor{level: slog.LevelError}
	}
	return everyRecord // TRACE, JSON, or a level Terraform reads as TRACE
}

// logInTurn runs one tflog call at a time. With masks set, tflog rewrites
// the context's shared field map on every call (terraform-plugin-log issue
// 246), which crashes the provider when goroutines log at once.
func logInTurn(turns *sync.Mutex, log func()) {
	turns.Lock()
	defer turns.Unlock()
	log()
}

func (h *tflogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return !h.floor.off && level >= h.floor.level
}

func (h *tflogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]any, r.NumAttrs()+len(h.attrs))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		fields[key] = h.redactor.String(a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	msg := h.redactor.String(r.Message)
	logInTurn(h.turns, func() { h.log(r.Level, msg, fields) })
	return nil
}

// log writes at regclient's level: its INFO lines are request details, so DEBUG here.
func (h *tflogHandler) log(level slog.Level, msg string, fields map[string]any) {
	switch {
	case level >= slog.LevelError:
		tflog.SubsystemError(h.ctx, "regclient", msg, fields)
	case level >= slog.LevelWarn:
		tflog.SubsystemWarn(h.ctx, "regclient", msg, fields)
	case level >= slog.LevelInfo:
		tflog.SubsystemDebug(h.ctx, "regclient", msg, fields)
	default:
		tflog.SubsystemTrace(h.ctx, "regclient", msg, fields)
	}
}

func (h *tflogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &n
}

func (h *tflogHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

// loggerLevelVars set the levels of the provider's own loggers: the SDK's,
// its protocol and framework subsystems, and this provider's root logger.
// Unset, each writes every line down to TRACE to Terraform.
var loggerLevelVars = []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_IMAGESYNC"}

// SilenceUnreadLogs turns the provider's loggers off when Terraform keeps
// none of their lines (neither TF_LOG nor TF_LOG_PROVIDER set). Left at
// TRACE they stream every line to Terraform, which parses each one only to
// drop it: a sixth of terraform's CPU in a no-op plan of 400 resources. A
// level the user set is left as it is.
func SilenceUnreadLogs(getenv func(string) string, setenv func(string, string) error) {
	if !regclientLogFloor(getenv).off {
		return
	}
	for _, v := range loggerLevelVars {
		if getenv(v) == "" {
			_ = setenv(v, "OFF")
		}
	}
}
