package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/duration"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
)

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy get|set --business B",
		Short: "Show or change a business's policy (caps, cooldowns, blocked regions, consent, quiet hours…)",
		Long: `A business's policy is the deployment's defaults (the config file's policy: block)
with the business's own overrides on top. get shows both; set changes overrides.
Both need an admin API key when the server has keys.`,
	}
	cmd.AddCommand(policyGetCmd(), policySetCmd())
	return cmd
}

func policyGetCmd() *cobra.Command {
	var (
		business string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "get --business B [--json]",
		Short: "Show a business's effective policy and its own overrides",
		Long: `Show a business's policy (GetPolicy): the overrides it has, in the config file's
policy: shape (paste them into a file for "policy set --file"), and the effective
policy, the overrides on top of the deployment's defaults. --json prints the API's
answer.
` + connHelp,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := callServer(cmd, cf, "GetPolicy", func(ctx context.Context, c *client.Client) (*sgv1.GetPolicyResponse, error) {
			return c.Policy(ctx, business)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		p := &printer{w: cmd.OutOrStdout()}
		p.f("policy of business %s\n", business)
		writePolicies(p, resp.GetOverrides(), resp.GetEffective())
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business (required)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

func policySetCmd() *cobra.Command {
	var (
		business, file string
		mask           []string
		replace        bool
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "set --business B [--FIELD VALUE…] [--file policy.yaml] [--mask FIELD,…]",
		Short: "Change fields of a business's policy: by flags, or from a YAML or JSON file",
		Long: `Change a business's policy overrides (SetPolicy). Only the fields named change:
each flag set names its field, and so does each key of --file, a YAML or JSON file
in the shape of the config file's policy: block, e.g.

  require_opt_in: true
  frequency_caps: [{count: 2, window: 7d}]
  quiet_hours: {start: "21:00", end: "08:00"}

--mask FIELD,… names the fields to change instead: a field it names that no flag
or key sets goes back to the deployment default, and a key of --file it does not
name is left as it is (a flag it does not name is refused). --replace replaces every override
with what the flags and the file set (fields they leave out go back to the
defaults).

Flag values: durations as 24h, 90m or 7d; lists comma-separated (--blocked-regions
US,AR); an empty value turns a list off (--frequency-caps ""), as does
--quiet-hours off; frequency caps as COUNT/WINDOW (--frequency-caps 1/24h,3/7d);
rules by name (--shadow-rules FREQUENCY_CAP). It prints what changed and the
overrides after; --json prints the API's answer.
` + connHelp,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	values := addPolicyFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pol := &sgv1.Policy{}
		var paths []string
		if file != "" {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var keys []string
			if pol, keys, err = server.ParsePolicy(data); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			paths = keys
		}
		var flagged []policyFlag
		for _, v := range values {
			if !cmd.Flags().Changed(v.flag) {
				continue
			}
			if err := setPolicyField(pol, v.fd, *v.value); err != nil {
				return fmt.Errorf("--%s: %w", v.flag, err)
			}
			paths = appendNew(paths, string(v.fd.Name()))
			flagged = append(flagged, v)
		}
		if cmd.Flags().Changed("mask") {
			var err error
			if paths, err = maskPaths(mask); err != nil {
				return err
			}
			// A file's keys outside the mask are left alone on purpose (the
			// mask picks fields of the file); a flag's never is.
			for _, v := range flagged {
				if !slices.Contains(paths, string(v.fd.Name())) {
					return fmt.Errorf("--%s is set but --mask does not name %s: it would change nothing", v.flag, v.fd.Name())
				}
			}
		}
		if replace {
			if cmd.Flags().Changed("mask") {
				return errors.New("--replace and --mask do not go together")
			}
			paths = nil
		} else if len(paths) == 0 {
			return errors.New("nothing to change: set a field's flag (see --help), --file or --mask")
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		before, err := c.Policy(cmd.Context(), business)
		if err != nil {
			return callError("GetPolicy", cf.addr, err)
		}
		req := &sgv1.SetPolicyRequest{BusinessId: business, Policy: pol}
		if !replace {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		after, err := c.SetPolicy(cmd.Context(), req)
		if err != nil {
			return callError("SetPolicy", cf.addr, err)
		}
		if asJSON {
			return printJSON(cmd, after)
		}
		p := &printer{w: cmd.OutOrStdout()}
		writePolicyChange(p, business, before.GetEffective(), after.GetEffective(), after.GetOverrides(), paths)
		writeOverrides(p, after.GetOverrides())
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business (required)")
	f.StringVar(&file, "file", "", "a YAML or JSON file of policy fields, as in the config file's policy: block")
	f.StringSliceVar(&mask, "mask", nil, "the fields to change (default: the fields the flags and --file set)")
	f.BoolVar(&replace, "replace", false, "replace every override (no mask): fields not set go back to the defaults")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

// policyFlagHelp is the help of each Policy field's flag of `policy set`. Every
// Policy field has an entry (TestPolicyFlagsCoverPolicy): a new field gets its
// flag by being added here.
var policyFlagHelp = map[string]string{
	"frequency_caps":            "marketing sends per window, COUNT/WINDOW,… (e.g. 1/24h,3/7d)",
	"ecosystem_cooldown":        "DEFER after a 131049, doubling on each consecutive one (e.g. 24h)",
	"ecosystem_cooldown_max":    "the cap of the doubled 131049 cooldown (e.g. 7d)",
	"experiment_ttl":            "how long a 130472 (Meta's marketing experiment) holds marketing (e.g. 30d)",
	"service_window":            "the customer service window after a message from the user (at most 24h)",
	"undeliverable_backoff":     "DEFER steps after consecutive 131026 failures (e.g. 24h,72h,7d)",
	"pair_interval":             "pair rate: one send to a number per interval, sustained (e.g. 6s; 0s: off)",
	"pair_burst":                "pair rate: sends to a number in a burst (0: off)",
	"opt_out_keywords":          "inbound texts that opt the user out (e.g. STOP,PARAR)",
	"opt_in_keywords":           "inbound texts that opt the user back in (e.g. START)",
	"quiet_hours":               "no marketing in the recipient's local HH:MM-HH:MM (e.g. 21:00-08:00), or off",
	"template_repeat_window":    "no repeat of a marketing template to a number within this window (0s: off)",
	"messaging_limit":           "unique users reached outside the window per rolling 24h (0: off)",
	"blocked_regions":           "regions with no marketing (US is Meta's rule, 131049; others are your own), e.g. US,AR",
	"require_opt_in":            "deny marketing to users without a recorded opt-in (true or false)",
	"share_number_signals":      "share number-wide facts (131049, 130472, 131026) with this deployment's other businesses",
	"shadow":                    "the whole business in shadow mode: reasons reported, verdicts stay ALLOW (opt-outs excepted)",
	"shadow_rules":              "rules in shadow mode, e.g. FREQUENCY_CAP,QUIET_HOURS",
	"default_region":            "the region national spellings are read by when a request names none (e.g. BR)",
	"number_validation":         "what INVALID_NUMBER means: valid (libphonenumber, unless history proves the number) or possible",
	"keyword_opt_in_is_consent": "an opt-in keyword also records consent for require_opt_in (true or false)",
}

// policyFlag is one Policy field's flag of `policy set`.
type policyFlag struct {
	flag  string
	fd    protoreflect.FieldDescriptor
	value *string
}

// addPolicyFlags registers a flag per Policy field (its name with dashes), each
// read as text by setPolicyField; a boolean field's flag alone means true.
func addPolicyFlags(f *pflag.FlagSet) []policyFlag {
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	out := make([]policyFlag, 0, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := strings.ReplaceAll(string(fd.Name()), "_", "-")
		v := new(string)
		f.StringVar(v, name, "", policyFlagHelp[string(fd.Name())])
		if fd.Kind() == protoreflect.BoolKind {
			f.Lookup(name).NoOptDefVal = "true"
		}
		out = append(out, policyFlag{flag: name, fd: fd, value: v})
	}
	return out
}

// maskPaths reads --mask: Policy field names, with dashes or underscores.
func maskPaths(names []string) ([]string, error) {
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	var paths []string
	for _, n := range names {
		n = strings.ReplaceAll(strings.TrimSpace(n), "-", "_")
		if n == "" {
			continue
		}
		if fields.ByName(protoreflect.Name(n)) == nil {
			return nil, fmt.Errorf("--mask: %q is not a policy field (%s)", n, strings.Join(policyFieldNames(), ", "))
		}
		paths = appendNew(paths, n)
	}
	if len(paths) == 0 {
		return nil, errors.New("--mask names no field")
	}
	return paths, nil
}

func policyFieldNames() []string {
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	names := make([]string, fields.Len())
	for i := range names {
		names[i] = string(fields.Get(i).Name())
	}
	return names
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

var (
	durationName    = (&durationpb.Duration{}).ProtoReflect().Descriptor().FullName()
	frequencyCapMsg = (&sgv1.FrequencyCap{}).ProtoReflect().Descriptor().FullName()
	quietHoursMsg   = (&sgv1.QuietHours{}).ProtoReflect().Descriptor().FullName()
)

// setPolicyField sets a Policy field from a flag's text, by the field's type.
// An empty value turns a list off (a list holding one zero element, as the
// config file does).
func setPolicyField(p *sgv1.Policy, fd protoreflect.FieldDescriptor, s string) error {
	m := p.ProtoReflect()
	s = strings.TrimSpace(s)
	if fd.IsList() {
		l := m.NewField(fd).List()
		items := []string{""}
		if s != "" {
			items = strings.Split(s, ",")
		}
		for _, item := range items {
			v, err := policyValue(fd, strings.TrimSpace(item), s == "")
			if err != nil {
				return err
			}
			l.Append(v)
		}
		m.Set(fd, protoreflect.ValueOfList(l))
		return nil
	}
	v, err := policyValue(fd, s, false)
	if err != nil {
		return err
	}
	m.Set(fd, v)
	return nil
}

// policyValue reads one value of a Policy field (one element of a list); off is
// the zero element that turns a list off.
func policyValue(fd protoreflect.FieldDescriptor, s string, off bool) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("%q: want true or false", s)
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.Int32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("%q: want a whole number", s)
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.EnumKind:
		if off {
			return protoreflect.ValueOfEnum(0), nil
		}
		return enumValue(fd.Enum(), s)
	case protoreflect.MessageKind:
		msg, err := policyMessage(fd.Message().FullName(), s, off)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfMessage(msg.ProtoReflect()), nil
	}
	return protoreflect.Value{}, fmt.Errorf("field %s has no flag form", fd.Name())
}

// enumValue reads an enum value by its name, in any case, with or without the
// enum's prefix (FREQUENCY_CAP, rule_frequency_cap, valid).
func enumValue(ed protoreflect.EnumDescriptor, s string) (protoreflect.Value, error) {
	values := ed.Values()
	prefix := enumPrefix(ed)
	n := strings.ToUpper(s)
	var names []string
	for i := range values.Len() {
		v := values.Get(i)
		if v.Number() == 0 {
			continue
		}
		name := string(v.Name())
		if n == name || prefix+n == name {
			return protoreflect.ValueOfEnum(v.Number()), nil
		}
		names = append(names, strings.TrimPrefix(name, prefix))
	}
	return protoreflect.Value{}, fmt.Errorf("%q: want one of %s", s, strings.Join(names, ", "))
}

// enumPrefix is the prefix of an enum's value names: its zero value's name
// without UNSPECIFIED ("RULE_").
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	return strings.TrimSuffix(string(ed.Values().ByNumber(0).Name()), "UNSPECIFIED")
}

// policyMessage reads a duration (24h, 7d), a frequency cap (COUNT/WINDOW) or
// quiet hours (HH:MM-HH:MM, or off).
func policyMessage(name protoreflect.FullName, s string, off bool) (proto.Message, error) {
	switch name {
	case durationName:
		if off {
			return durationpb.New(0), nil
		}
		d, err := duration.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want a duration such as 6s, 90m, 24h or 7d", s)
		}
		return durationpb.New(d), nil
	case frequencyCapMsg:
		if off {
			return &sgv1.FrequencyCap{Window: durationpb.New(0)}, nil
		}
		count, window, ok := strings.Cut(s, "/")
		n, err := strconv.ParseInt(strings.TrimSpace(count), 10, 32)
		d, err2 := duration.Parse(window)
		if !ok || err != nil || err2 != nil {
			return nil, fmt.Errorf("%q: want COUNT/WINDOW, such as 1/24h or 3/7d", s)
		}
		return &sgv1.FrequencyCap{Count: int32(n), Window: durationpb.New(d)}, nil
	case quietHoursMsg:
		if strings.EqualFold(s, "off") || s == "" {
			return &sgv1.QuietHours{Start: "00:00", End: "00:00"}, nil // start = end: off
		}
		start, end, ok := strings.Cut(s, "-")
		if !ok {
			return nil, fmt.Errorf("%q: want HH:MM-HH:MM, such as 21:00-08:00, or off", s)
		}
		return &sgv1.QuietHours{Start: strings.TrimSpace(start), End: strings.TrimSpace(end)}, nil
	}
	return nil, fmt.Errorf("no flag form for %s", name)
}

// writePolicies prints a business's overrides and effective policy, each field
// on a line in the config file's policy: shape.
func writePolicies(p *printer, overrides, effective *sgv1.Policy) {
	writeOverrides(p, overrides)
	p.f("effective (the overrides on top of the deployment defaults):\n")
	for _, l := range policyLines(effective, true) {
		p.f("  %s\n", l)
	}
}

// writeOverrides prints a business's overrides, in the config file's shape.
func writeOverrides(p *printer, overrides *sgv1.Policy) {
	lines := policyLines(overrides, false)
	if len(lines) == 0 {
		p.f("overrides: none (the deployment defaults apply)\n")
		return
	}
	p.f("overrides (this business's own; the other fields are the deployment defaults):\n")
	for _, l := range lines {
		p.f("  %s\n", l)
	}
}

// writePolicyChange says which fields a SetPolicy named and how each one's
// effective value changed.
func writePolicyChange(p *printer, business string, before, after, overrides *sgv1.Policy, paths []string) {
	if paths == nil {
		paths = policyFieldNames()
		p.f("replaced the overrides of business %s\n", business)
	} else {
		p.f("changed the policy of business %s (%s)\n", business, strings.Join(paths, ", "))
	}
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	changed := 0
	for _, path := range paths {
		fd := fields.ByName(protoreflect.Name(path))
		was, now := fieldText(before, fd, true), fieldText(after, fd, true)
		note := ""
		if !overrides.ProtoReflect().Has(fd) {
			note = " (the deployment default)"
		}
		if was == now {
			continue
		}
		changed++
		p.f("  %s: %s -> %s%s\n", path, was, now, note)
	}
	if changed == 0 {
		p.f("  no effective value changed\n")
	}
}

// policyLines prints a policy's fields, "name: value", in field order: every
// field of an effective policy, only the set ones of overrides.
func policyLines(pol *sgv1.Policy, effective bool) []string {
	m := pol.ProtoReflect()
	fields := m.Descriptor().Fields()
	var lines []string
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !effective && !m.Has(fd) {
			continue
		}
		lines = append(lines, string(fd.Name())+": "+fieldText(pol, fd, effective))
	}
	return lines
}

// fieldText prints one field's value as the config file takes it. In an
// effective policy an unset field is off (quiet hours) or not given (-); in
// overrides a list holding one zero element is marked as turning it off.
func fieldText(pol *sgv1.Policy, fd protoreflect.FieldDescriptor, effective bool) string {
	m := pol.ProtoReflect()
	if !m.Has(fd) {
		switch {
		case fd.IsList():
			return "[]"
		case fd.Message() != nil && fd.Message().FullName() == quietHoursMsg:
			return "off"
		}
		return "(not set)"
	}
	v := m.Get(fd)
	if !fd.IsList() {
		s := valueText(fd, v)
		if q, ok := v.Interface().(protoreflect.Message); ok && fd.Message().FullName() == quietHoursMsg {
			if qh := q.Interface().(*sgv1.QuietHours); qh.GetStart() == qh.GetEnd() && !effective {
				s += "  # off"
			}
		}
		return s
	}
	l := v.List()
	items := make([]string, l.Len())
	for i := range items {
		items[i] = valueText(fd, l.Get(i))
	}
	s := "[" + strings.Join(items, ", ") + "]"
	if !effective && l.Len() == 1 && isZero(fd, l.Get(0)) {
		s += "  # off"
	}
	return s
}

// valueText prints one value (of a list, or a singular field).
func valueText(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return yamlString(v.String())
	case protoreflect.EnumKind:
		ev := fd.Enum().Values().ByNumber(v.Enum())
		if ev == nil {
			return strconv.Itoa(int(v.Enum()))
		}
		return strings.TrimPrefix(string(ev.Name()), enumPrefix(fd.Enum()))
	case protoreflect.MessageKind:
		switch x := v.Message().Interface().(type) {
		case *durationpb.Duration:
			return configDuration(x.AsDuration())
		case *sgv1.FrequencyCap:
			return fmt.Sprintf("{count: %d, window: %s}", x.GetCount(), configDuration(x.GetWindow().AsDuration()))
		case *sgv1.QuietHours:
			return fmt.Sprintf("{start: %q, end: %q}", x.GetStart(), x.GetEnd())
		}
	}
	return v.String()
}

// isZero reports whether a list element is the zero element that turns a list off.
func isZero(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String() == ""
	case protoreflect.EnumKind:
		return v.Enum() == 0
	case protoreflect.MessageKind:
		switch x := v.Message().Interface().(type) {
		case *durationpb.Duration:
			return x.AsDuration() == 0
		case *sgv1.FrequencyCap:
			return x.GetCount() == 0
		}
	}
	return false
}

// yamlString prints a string plain when YAML reads it back as the same string,
// quoted otherwise.
func yamlString(s string) string {
	if s == "" || strings.ContainsAny(s, ":#,[]{}&*!|>'\"%@`") || strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n":
		return strconv.Quote(s)
	}
	return s
}

// configDuration prints a duration as the config file takes it: whole days as
// 7d, else as Go prints it without zero units (24h, 90m → 1h30m, 6s, 0s).
func configDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 && d > day {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
