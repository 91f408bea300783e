package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
)

// Delimited encodes metric families as a delimited-protobuf push body.
func Delimited(mfs ...*dto.MetricFamily) ([]byte, error) {
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := protodelim.MarshalTo(&b, mf); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// ParseExposition parses a /metrics body of the given Content-Type
// (delimited protobuf, or text with or without UTF-8 names) and returns the
// names of its families; a family twice is an error.
func ParseExposition(contentType string, body []byte) (map[string]bool, error) {
	names := map[string]bool{}
	if strings.HasPrefix(contentType, "application/vnd.google.protobuf") {
		r := bytes.NewReader(body)
		for {
			mf := &dto.MetricFamily{}
			if err := protodelim.UnmarshalFrom(r, mf); err != nil {
				if errors.Is(err, io.EOF) {
					return names, nil
				}
				return nil, err
			}
			if names[mf.GetName()] {
				return nil, fmt.Errorf("family %q twice", mf.GetName())
			}
			names[mf.GetName()] = true
		}
	}
	validation := model.LegacyValidation
	if strings.Contains(contentType, "escaping=allow-utf-8") {
		validation = model.UTF8Validation
	}
	p := expfmt.NewTextParser(validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for n := range fams {
		names[n] = true
	}
	return names, nil
}
