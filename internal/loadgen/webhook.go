package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sendguard/sendguard/webhook"
)

// webhookBody appends a signed-ready webhook POST body of n statuses, as Meta
// batches them: ids are unique (prefix and k), recipients are seeded numbers
// (digits only, as Meta spells them), statuses a mix of delivered, read, sent and
// 131049 failures.
func webhookBody(b []byte, phoneNumberID, prefix string, n int, recipient func(k int) int, at time.Time) []byte {
	ts := strconv.FormatInt(at.Unix(), 10)
	b = append(b, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":`...)
	b = strconv.AppendQuote(b, phoneNumberID)
	b = append(b, `},"statuses":[`...)
	for k := range n {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"wamid.`...)
		b = append(b, prefix...)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `","status":"`...)
		status, code := "delivered", 0
		switch k % 20 {
		case 10, 11, 12, 13, 14:
			status = "read"
		case 15, 16, 17:
			status = "sent"
		case 18, 19:
			status, code = "failed", 131049
		}
		b = append(b, status...)
		b = append(b, `","timestamp":"`...)
		b = append(b, ts...)
		b = append(b, `","recipient_id":"`...)
		b = appendDigits(b, recipient(k))
		b = append(b, `","pricing":{"category":"marketing"}`...)
		if code != 0 {
			b = append(b, `,"errors":[{"code":`...)
			b = strconv.AppendInt(b, int64(code), 10)
			b = append(b, `,"title":"Message failed to send because more than one message was sent to this user in a short period"}]`...)
		}
		b = append(b, '}')
	}
	return append(b, `]}}]}]}`...)
}

// appendDigits appends Number(i) without its '+'.
func appendDigits(b []byte, i int) []byte {
	n := len(b)
	b = AppendNumber(b, i)
	return append(b[:n], b[n+1:]...)
}

// poster posts signed webhook bodies.
type poster struct {
	url    string
	secret []byte
	client *http.Client
}

func (p *poster) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, p.secret))
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook POST: %s", resp.Status)
	}
	return nil
}
