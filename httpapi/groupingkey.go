package httpapi

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// base64Suffix marks a label name (or "job") in the URL path whose value is
// base64url encoded.
const base64Suffix = "@base64"

// decodeBase64 decodes RFC 4648 base64url, ignoring trailing '=' padding.
// On error it returns what was decoded so far, which upstream puts in its
// message.
func decodeBase64(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return string(b), err
}

// parseGroupingLabels turns the "/name/value/..." tail of a push URL into
// grouping labels, validating names and decoding @base64 values.
func parseGroupingLabels(labels string, validation model.ValidationScheme, escaping model.EscapingScheme) (map[string]string, error) {
	result := map[string]string{}
	if len(labels) <= 1 {
		return result, nil
	}
	parts := strings.Split(labels[1:], "/")
	if len(parts)%2 != 0 {
		return nil, fmt.Errorf("odd number of components in label string %q", labels)
	}
	for i := 0; i+1 < len(parts); i += 2 {
		rawName, value := parts[i], parts[i+1]
		name := strings.TrimSuffix(rawName, base64Suffix)
		unescaped := model.UnescapeName(name, escaping)
		// The reserved prefix is judged on the name as stored: an escaped
		// name such as U___5f__5f_x is __x.
		if !validation.IsValidLabelName(unescaped) || strings.HasPrefix(name, model.ReservedLabelPrefix) ||
			strings.HasPrefix(unescaped, model.ReservedLabelPrefix) {
			return nil, fmt.Errorf("improper label name %q", name)
		}
		if rawName != name {
			decoded, err := decodeBase64(value)
			if err != nil {
				return nil, fmt.Errorf("invalid base64 encoding for label %s=%q: %v", name, value, err)
			}
			value = decoded
		}
		if !utf8.ValidString(value) {
			return nil, fmt.Errorf("value of label %s is not valid UTF-8: %q", name, value)
		}
		result[unescaped] = value
	}
	return result, nil
}
