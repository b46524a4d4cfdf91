package codec

import "github.com/sendguard/sendguard/validator"

// AppendNumberFacts appends the encoding of f to dst and returns the extended slice.
func AppendNumberFacts(dst []byte, f *validator.NumberFacts) []byte {
	dst = append(dst, Version)
	return appendFacts(dst, f)
}

// DecodeNumberFacts decodes b into f, replacing all of f. On error f is zeroed. f
// keeps no reference to b.
func DecodeNumberFacts(b []byte, f *validator.NumberFacts) error {
	d := decoder{b: b}
	d.version("number facts")
	*f = decodeFacts(&d)
	if err := d.finish("number facts"); err != nil {
		*f = validator.NumberFacts{}
		return err
	}
	return nil
}

// appendFacts writes NumberFacts without a version byte (it is also embedded in a
// Relationship as Local).
func appendFacts(dst []byte, f *validator.NumberFacts) []byte {
	dst = appendTime(dst, f.EcoAt)
	dst = appendInt(dst, f.EcoStreak)
	dst = appendTime(dst, f.ExperimentAt)
	dst = appendTime(dst, f.UndeliverableAt)
	dst = appendInt(dst, f.UndeliverableStreak)
	dst = appendTime(dst, f.LastDeliveredAt)
	dst = appendTime(dst, f.LastMarketingDeliveredAt)
	return appendString(dst, f.WaID)
}

func decodeFacts(d *decoder) validator.NumberFacts {
	var f validator.NumberFacts
	f.EcoAt = d.time("EcoAt")
	f.EcoStreak = d.int("EcoStreak")
	f.ExperimentAt = d.time("ExperimentAt")
	f.UndeliverableAt = d.time("UndeliverableAt")
	f.UndeliverableStreak = d.int("UndeliverableStreak")
	f.LastDeliveredAt = d.time("LastDeliveredAt")
	f.LastMarketingDeliveredAt = d.time("LastMarketingDeliveredAt")
	f.WaID = d.string("WaID")
	return f
}
