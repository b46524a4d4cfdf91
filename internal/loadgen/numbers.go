package loadgen

import "strconv"

// An audience of distinct, valid mobile numbers spread over the countries a
// WhatsApp platform sends to, as canonical E.164: number i is built from slot
// i%len(slots) (a country and a range) and a subscriber part derived from
// i/len(slots) by a bijection, so that consecutive numbers are far apart in the
// store's key order (as a real audience's are) and no two indexes give the same
// number.
type slot struct {
	prefix string // "+" country code and the range's leading digits
	digits int    // subscriber digits after prefix
	mul    uint64 // odd and not a multiple of 5: a bijection modulo 10^digits
	first  byte   // when not 0, the subscriber part starts with this digit (one fewer free digit)
}

// slots: 40 % Brazil, 20 % Mexico, 15 % India, 10 % Indonesia, 10 % Germany, 5 %
// the United States (whose marketing is denied by REGION_BLOCKED).
var slots = [...]slot{
	{"+55119", 8, 48271, 0}, {"+55219", 8, 48271, 0}, {"+55319", 8, 48271, 0}, {"+55419", 8, 48271, 0},
	{"+55519", 8, 48271, 0}, {"+55619", 8, 48271, 0}, {"+55719", 8, 48271, 0}, {"+55819", 8, 48271, 0},
	{"+5255", 8, 69621, 0}, {"+5233", 8, 69621, 0}, {"+5281", 8, 69621, 0}, {"+5256", 8, 69621, 0},
	{"+919", 9, 40693, 0}, {"+918", 9, 40693, 0}, {"+917", 9, 40693, 0},
	{"+62812", 8, 16807, 0}, {"+62813", 8, 16807, 0},
	{"+49151", 8, 39373, 0}, {"+4917", 8, 39373, 0},
	{"+1650", 7, 0, '2'},
}

// MaxNumbers is how many distinct numbers Number makes: the smallest range
// (+1 650 2xx xxxx) holds 10^6.
const MaxNumbers = len(slots) * 1_000_000

var pow10 = [...]uint64{1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000}

// Number returns the i-th number of the audience (0 <= i < MaxNumbers).
func Number(i int) string {
	var buf [20]byte
	return string(AppendNumber(buf[:0], i))
}

// AppendNumber appends Number(i) to b.
func AppendNumber(b []byte, i int) []byte {
	s := &slots[i%len(slots)]
	j := uint64(i / len(slots))
	b = append(b, s.prefix...)
	digits := s.digits
	if s.first != 0 {
		b = append(b, s.first)
		digits--
	}
	m := pow10[digits]
	x := j % m
	if s.mul != 0 {
		x = x * s.mul % m
	}
	var d [10]byte
	for k := digits - 1; k >= 0; k-- {
		d[k] = byte('0' + x%10)
		x /= 10
	}
	return append(b, d[:digits]...)
}

// Digits returns Number(i) without its '+', as Meta's webhooks spell it.
func Digits(i int) string { return Number(i)[1:] }

// permute maps 0..n-1 onto itself in a scattered order (a multiplicative step
// coprime with n), so that a workload walking k = 0, 1, 2, ... touches distinct
// numbers spread over the whole key space.
type permute struct {
	n, step uint64
}

func newPermute(n int) permute {
	step := uint64(2_654_435_761) % uint64(max(n, 1))
	for step == 0 || gcd(step, uint64(n)) != 1 {
		step++
	}
	return permute{n: uint64(max(n, 1)), step: step}
}

func (p permute) at(k uint64) int { return int(k % p.n * p.step % p.n) }

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
