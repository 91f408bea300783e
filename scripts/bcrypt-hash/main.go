// Command bcrypt-hash prints the bcrypt hash of the password read from
// standard input (one line), for basic_auth_users in a --web.config.file.
// scripts/gen-test-certs.sh uses it when htpasswd is not installed.
//
//	echo -n secret | go run ./scripts/bcrypt-hash
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "bcrypt-hash: read the password from standard input:", err)
		os.Exit(1)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(strings.TrimRight(line, "\r\n")), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bcrypt-hash:", err)
		os.Exit(1)
	}
	fmt.Println(string(hash))
}
