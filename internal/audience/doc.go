// Package audience checks a whole audience file before a campaign, as
// `sendguard validate` does: Open reads the CSV (reader.go: a line that is not
// CSV becomes a row of its own, never the end of the run) and finds its columns
// (columns.go); Run streams the rows through CheckSendStream and writes one
// output row per input row, in input order (pipeline.go: a pipeline whose read,
// send, receive and write methods each own the channels they send on); Summary
// counts and prints what the run found (summary.go).
//
// It also holds what `sendguard validate` and the console's Audience page both
// say about a campaign's answers: which avoided sends are doomed (Meta would
// refuse them) and which unwanted (Meta would deliver them, and charge, against
// the sender's own rules). The classification is written once, in classify.go;
// the console's script reads it from classification.js, which
// TestConsoleClassification keeps equal to that file's table.
//
// One name for the concept: the audience (this package, its Options, Input,
// Summary and pipeline). `validate` is only the command that runs it.
package audience
