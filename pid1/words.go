package pid1

import (
	"fmt"
	"strings"
)

// SplitWords splits a hook's command line into words the way a POSIX shell
// would, with no shell: blanks separate words; 'single quotes' keep
// everything; "double quotes" keep everything but let \ escape \, ", $ and `;
// a backslash outside quotes escapes the next character. No expansion of
// any kind happens.
func SplitWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   byte // 0, '\'' or '"'
		escaped bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
			if quote == '"' && !strings.ContainsRune("\\\"$`\n", rune(c)) {
				cur.WriteByte('\\')
			}
			if c != '\n' { // backslash-newline is a line continuation
				cur.WriteByte(c)
			}
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	switch {
	case escaped:
		return nil, fmt.Errorf("command line %q ends with a backslash", s)
	case quote != 0:
		return nil, fmt.Errorf("command line %q has an unterminated %c quote", s, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("command line %q is empty", s)
	}
	return words, nil
}
