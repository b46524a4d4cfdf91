package identity

import (
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Zones must work on hosts without a zoneinfo database.

	"github.com/nyaruka/phonenumbers"
)

var (
	// zoneLists caches, per list of zone names libphonenumber returns for a
	// prefix (names joined by "\n"), the loaded locations ([]*time.Location).
	zoneLists sync.Map
	// locations caches time.LoadLocation per zone name (*time.Location, nil
	// if it failed to load).
	locations sync.Map
)

// Zones returns the IANA time zones libphonenumber maps the number to, loaded
// as *time.Location. It uses phonenumbers.GetTimezonesForPrefix on n.E164,
// which is what phonenumbers.GetTimezonesForNumber does after formatting the
// number as E.164. The unknown zone ("Etc/Unknown") and names that fail to
// load are dropped; the result may be nil. Locations are cached (loading one
// is slow); the returned slice is the caller's own.
func Zones(n Number) []*time.Location {
	if n.E164 == "" {
		return nil
	}
	names, err := phonenumbers.GetTimezonesForPrefix(n.E164)
	if err != nil || len(names) == 0 {
		return nil
	}
	var key string
	if len(names) == 1 {
		key = names[0]
	} else {
		key = strings.Join(names, "\n")
	}
	if v, ok := zoneLists.Load(key); ok {
		return slices.Clone(v.([]*time.Location))
	}
	locs := make([]*time.Location, 0, len(names))
	for _, name := range names {
		if loc := location(name); loc != nil {
			locs = append(locs, loc)
		}
	}
	if len(locs) == 0 {
		locs = nil
	}
	zoneLists.Store(key, locs)
	return slices.Clone(locs)
}

func location(name string) *time.Location {
	if name == phonenumbers.UNKNOWN_TIMEZONE || name == "" {
		return nil
	}
	if v, ok := locations.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	locations.Store(name, loc)
	return loc
}
