package fieldtest

import (
	"slices"
	"testing"
	"time"
)

type inner struct {
	At   time.Time
	Name string
}

type outer struct {
	inner
	Count  int
	On     bool
	Items  []inner
	ByName map[string]inner
	Ptr    *inner
	hidden int
}

func TestFillLeavesNoZero(t *testing.T) {
	var o outer
	Fill(&o)
	if z := Zero(&o); len(z) != 0 {
		t.Fatalf("zero after Fill: %v", z)
	}
	if o.hidden != 0 {
		t.Error("an unexported field was filled")
	}
}

func TestZeroNamesTheFields(t *testing.T) {
	var o outer
	Fill(&o)
	o.Count, o.Items[0].Name, o.inner.At = 0, "", time.Time{}
	o.ByName = nil
	want := []string{"At", "Count", "Items[0].Name", "ByName"}
	if got := Zero(&o); !slices.Equal(got, want) {
		t.Errorf("Zero: %v, want %v", got, want)
	}
}
