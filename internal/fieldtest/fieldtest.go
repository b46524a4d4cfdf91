// Package fieldtest guards hand-kept field lists — an encoder and its decoder,
// a merge, a conversion between two types — against a field added to the type
// and forgotten in the list. Fill gives every field of a value a distinct
// non-zero value; Zero lists the fields still zero after the code under test
// ran. A test fills a fixture, runs the code, and fails on what Zero names
// (less what the code leaves alone on purpose, listed with the reason).
package fieldtest

import (
	"fmt"
	"reflect"
	"time"
)

// base is the first time Fill gives (2026-05-28, whole seconds apart).
const base = 1_780_000_000

var timeType = reflect.TypeFor[time.Time]()

// Fill sets every exported field of *ptr, recursively, to a distinct
// non-zero value: strings "f<n>", integers n, bools true, times base+n
// seconds in UTC, a slice one filled element, a map one filled entry, a
// pointer a filled value. Unexported fields are left alone.
func Fill(ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic("fieldtest.Fill needs a non-nil pointer")
	}
	n := 0
	fill(v.Elem(), &n)
}

func fill(v reflect.Value, n *int) {
	*n++
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(time.Unix(base+int64(*n), 0).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("f%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n % 100))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n))
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	default:
		panic(fmt.Sprintf("fieldtest.Fill: %s fields are not handled", v.Kind()))
	}
}

// Zero lists the paths ("Sends[0].Ref", "Templates[k].PausedAt") of the
// exported leaf fields of v (a struct or a pointer to one) that are zero:
// an empty slice or map counts as one zero leaf, and so does a nil pointer.
func Zero(v any) []string {
	var out []string
	zero(reflect.Indirect(reflect.ValueOf(v)), "", &out)
	return out
}

func zero(v reflect.Value, path string, out *[]string) {
	name := func(s string) string {
		if path == "" {
			return s
		}
		return path + "." + s
	}
	if v.Type() == timeType {
		if v.Interface().(time.Time).IsZero() {
			*out = append(*out, path)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
				fieldPath := name(f.Name)
				if f.Anonymous {
					fieldPath = path // promoted fields keep their own names
				}
				zero(v.Field(i), fieldPath, out)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			*out = append(*out, path)
		}
		for i := range v.Len() {
			zero(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		if v.Len() == 0 {
			*out = append(*out, path)
		}
		it := v.MapRange()
		for it.Next() {
			zero(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key()), out)
		}
	case reflect.Pointer:
		if v.IsNil() {
			*out = append(*out, path)
			return
		}
		zero(v.Elem(), path, out)
	default:
		if v.IsZero() {
			*out = append(*out, path)
		}
	}
}
