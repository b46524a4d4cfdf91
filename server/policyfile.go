package server

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// ParsePolicy reads a business policy written as the config file's `policy:`
// block: YAML, or JSON (which YAML reads too), with durations such as "24h" or
// "7d" and rules by name; a document whose only key is `policy:` is read as that
// block. It returns the Policy and the keys the document sets, in its order:
// the fields a SetPolicy update_mask names to change only them. Keys that are
// not policy fields are an error; values are checked by SetPolicy, as the config
// file's are at startup.
func ParsePolicy(data []byte) (*sgv1.Policy, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil, errors.New("no policy fields")
	}
	m := doc.Content[0]
	if m.Kind == yaml.MappingNode && len(m.Content) == 2 && m.Content[0].Value == "policy" {
		m = m.Content[1]
	}
	if m.Kind != yaml.MappingNode || len(m.Content) == 0 {
		return nil, nil, errors.New("want a mapping of policy fields, such as require_opt_in: true")
	}
	known := policyFileKeys()
	var keys []string
	for i := 0; i < len(m.Content); i += 2 {
		k := m.Content[i].Value
		if !slices.Contains(known, k) {
			return nil, nil, fmt.Errorf("line %d: %q is not a policy field (%s)", m.Content[i].Line, k, strings.Join(known, ", "))
		}
		keys = append(keys, k)
	}
	block, err := yaml.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	var f filePolicy
	dec := yaml.NewDecoder(bytes.NewReader(block))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, nil, err
	}
	p, err := f.proto()
	if err != nil {
		return nil, nil, err
	}
	return p, keys, nil
}

// policyFileKeys are the keys of the config file's policy block, which are
// Policy's field names (TestPolicyFileKeysArePolicyFields).
func policyFileKeys() []string {
	t := reflect.TypeFor[filePolicy]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}
