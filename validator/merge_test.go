package validator

import (
	"slices"
	"testing"

	"github.com/sendguard/sendguard/internal/fieldtest"
)

// The merges of a user ID's history into its number's list the fields they
// fold by hand. These tests fold a record with every field set
// (fieldtest.Fill: a field added to the type later is set too) into an empty
// one and want every field carried over, but those the caller folds itself.

// TestMergeRelationshipKeepsEveryField: MergeRelationship carries every field
// of the relationship, but UserID (link sets it, to the ID being linked) and
// Local (link folds it with MergeFacts, into the number's facts or the
// relationship's own, as the business shares them).
func TestMergeRelationshipKeepsEveryField(t *testing.T) {
	var src Relationship
	fieldtest.Fill(&src)
	src.SenderState.Sender = ""
	src.Sends[0].Sender = src.Senders[0].Sender
	src.Sends[0].At = src.Events[0].At // kept by TrimSends: recent enough for the default caps
	var dst Relationship
	p := Defaults()
	MergeRelationship(&dst, &src, &p)
	byDesign := []string{"Sender", "UserID"}
	var lost []string
	for _, f := range fieldtest.Zero(&dst) {
		if !slices.Contains(byDesign, f) && !isLocal(f) {
			lost = append(lost, f)
		}
	}
	if len(lost) != 0 {
		t.Errorf("fields MergeRelationship drops (fold them, or list why not): %v", lost)
	}
}

func isLocal(path string) bool { return path == "Local" || len(path) > 6 && path[:6] == "Local." }

// TestMergeFactsKeepsEveryField: MergeFacts carries every number-wide fact.
func TestMergeFactsKeepsEveryField(t *testing.T) {
	var src, dst NumberFacts
	fieldtest.Fill(&src)
	MergeFacts(&dst, &src)
	if lost := fieldtest.Zero(&dst); len(lost) != 0 {
		t.Errorf("fields MergeFacts drops: %v", lost)
	}
}
