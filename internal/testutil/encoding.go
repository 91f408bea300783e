package testutil

import (
	"bytes"
	"compress/gzip"

	"github.com/golang/snappy"
)

// ContentEncodings are the request body encodings a push may use, by the
// Content-Encoding header that names them ("" is none).
var ContentEncodings = []string{"", "gzip", "snappy"}

// EncodeBody encodes a request body with ContentEncodings[i %
// len(ContentEncodings)] and returns it with that header value.
func EncodeBody(body []byte, i uint8) (encoded []byte, contentEncoding string) {
	contentEncoding = ContentEncodings[int(i)%len(ContentEncodings)]
	var wire bytes.Buffer
	switch contentEncoding {
	case "gzip":
		zw := gzip.NewWriter(&wire)
		_, _ = zw.Write(body)
		_ = zw.Close()
	case "snappy":
		sw := snappy.NewBufferedWriter(&wire)
		_, _ = sw.Write(body)
		_ = sw.Close()
	default:
		wire.Write(body)
	}
	return wire.Bytes(), contentEncoding
}
