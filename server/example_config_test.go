package server

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sendguard/sendguard/validator"
)

// exampleConfig is the commented example at the repository's root.
const exampleConfig = "../sendguard.example.yaml"

// TestExampleConfigStatesTheDefaults loads sendguard.example.yaml as serve does
// (unknown keys fail) and checks that it is a config the server accepts and
// that it changes nothing but its sample entries: every value it sets is the
// default, so a copy of it behaves as no file at all, and its secrets are empty.
func TestExampleConfigStatesTheDefaults(t *testing.T) {
	got := DefaultConfig()
	if err := LoadConfigFile(exampleConfig, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.withDefaultsChecked(); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if _, err := newKeyIndex(got.APIKeys); err != nil {
		t.Fatalf("the example's api_keys: %v", err)
	}
	want := DefaultConfig()
	if err := want.withDefaultsChecked(); err != nil {
		t.Fatal(err)
	}
	if len(got.APIKeys) != 1 || got.APIKeys[0].SHA256 != strings.Repeat("0", 64) {
		t.Errorf("api_keys: want one sample entry whose sha256 matches no key (64 zeros), got %+v", got.APIKeys)
	}
	if len(got.PhoneNumberIDs) != 1 {
		t.Errorf("phone_number_ids: want one sample entry, got %v", got.PhoneNumberIDs)
	}
	if len(got.WABAIDs) != 1 {
		t.Errorf("waba_ids: want one sample entry, got %v", got.WABAIDs)
	}
	// The sample entries and what cannot be compared aside, the example is the default.
	for _, c := range []*Config{&got, &want} {
		c.APIKeys, c.PhoneNumberIDs, c.WABAIDs, c.Logger, c.Now = nil, nil, nil, nil, nil
	}
	want.Defaults = validator.Defaults()
	for _, d := range fieldDiffs(reflect.ValueOf(got), reflect.ValueOf(want), "") {
		t.Errorf("the example sets something other than the default: %s", d)
	}
}

// fieldDiffs names the fields, nested structs' included, where got and want
// (structs of one type) differ.
func fieldDiffs(got, want reflect.Value, prefix string) []string {
	var out []string
	for i := range got.NumField() {
		name := prefix + got.Type().Field(i).Name
		g, w := got.Field(i), want.Field(i)
		switch {
		case g.Kind() == reflect.Struct:
			out = append(out, fieldDiffs(g, w, name+".")...)
		case !reflect.DeepEqual(g.Interface(), w.Interface()):
			out = append(out, fmt.Sprintf("%s is %v, want %v", name, g, w))
		}
	}
	return out
}

// TestExampleConfigNamesEveryKey fails when the config file takes a key
// (fileConfig's yaml tags, nested ones included) that the example does not
// set, or when a key of the example's block mappings has no comment.
func TestExampleConfigNamesEveryKey(t *testing.T) {
	raw, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	inExample := map[string]bool{}
	var uncommented []string
	walkYAMLKeys(doc.Content[0], "", false, func(path string, commented bool) {
		inExample[path] = true
		if !commented {
			uncommented = append(uncommented, path)
		}
	})
	keys := yamlKeys(reflect.TypeFor[fileConfig](), "")
	if len(keys) < 40 {
		t.Fatalf("found only %d keys in fileConfig: the walk is broken (%v)", len(keys), keys)
	}
	for _, k := range keys {
		if !inExample[k] {
			t.Errorf("sendguard.example.yaml does not set %s: add it, commented, with its default", k)
		}
	}
	if len(uncommented) > 0 {
		t.Errorf("keys without a comment in sendguard.example.yaml: %v", uncommented)
	}
}

// yamlKeys lists the dotted paths of every yaml key of t, a struct: a struct,
// a pointer to one or a slice of them adds its own keys under its path
// ("api_keys.sha256", "policy.quiet_hours.start").
func yamlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		out = append(out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, yamlKeys(ft, path+".")...)
		}
	}
	slices.Sort(out)
	return out
}

// walkYAMLKeys calls visit with the dotted path of every mapping key under n
// (a sequence's items share their sequence's path) and whether a comment
// explains it: one of its own (above it, or on its line) or one of a key it is
// under (tls's comment explains tls.cert_file).
func walkYAMLKeys(n *yaml.Node, prefix string, underComment bool, visit func(path string, commented bool)) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			walkYAMLKeys(item, prefix, underComment, visit)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			commented := underComment || k.HeadComment != "" || k.LineComment != "" || v.LineComment != ""
			visit(prefix+k.Value, commented)
			walkYAMLKeys(v, prefix+k.Value+".", commented, visit)
		}
	}
}
