package provider

import (
	"context"
	"log/slog"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// tflogHandler routes regclient's slog output into Terraform's log, under the
// provider's masks, so registry requests show in TF_LOG=DEBUG and nowhere else.
type tflogHandler struct {
	ctx   context.Context //nolint:containedctx // tflog keeps its sink in the context
	attrs []slog.Attr
	group string
}

func newSlogger(ctx context.Context, secrets ...string) *slog.Logger {
	ctx = tflog.NewSubsystem(ctx, "regclient")
	ctx = tflog.SubsystemMaskFieldValuesWithFieldKeys(ctx, "regclient", "token", "password", "Authorization", "pass")
	for _, s := range secrets {
		if s != "" {
			ctx = tflog.SubsystemMaskAllFieldValuesStrings(ctx, "regclient", s)
			ctx = tflog.SubsystemMaskMessageStrings(ctx, "regclient", s)
		}
	}
	return slog.New(&tflogHandler{ctx: ctx})
}

func (h *tflogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *tflogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]any, r.NumAttrs()+len(h.attrs))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		fields[key] = a.Value.String()
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	switch {
	case r.Level >= slog.LevelError:
		tflog.SubsystemError(h.ctx, "regclient", r.Message, fields)
	case r.Level >= slog.LevelWarn:
		tflog.SubsystemWarn(h.ctx, "regclient", r.Message, fields)
	case r.Level >= slog.LevelInfo:
		tflog.SubsystemDebug(h.ctx, "regclient", r.Message, fields)
	default:
		tflog.SubsystemTrace(h.ctx, "regclient", r.Message, fields)
	}
	return nil
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
