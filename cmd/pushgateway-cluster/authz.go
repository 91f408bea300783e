package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/authz"
)

// loadAuthorization reads --web.authorization-file (nil without it). The
// rules name users of --web.config.file's basic_auth_users: without them
// every request would be anonymous, so that is an error, as is a file that
// does not parse. Listed users the web config does not know are logged:
// they can never authenticate.
func loadAuthorization(path string, web webConfigSummary, logger *slog.Logger) (*authz.Holder, error) {
	if path == "" {
		return nil, nil
	}
	if !web.BasicAuthUsers {
		return nil, fmt.Errorf("--web.authorization-file=%s needs --web.config.file with basic_auth_users: without them every request is anonymous and no user could be told apart", path)
	}
	h, err := authz.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--web.authorization-file: %w", err)
	}
	warnUnknownUsers(h.Rules(), web, logger)
	logger.Info("per-job authorization on", "file", path, "users", len(h.Rules().Users()))
	return h, nil
}

// warnUnknownUsers logs the users of the rules that basic_auth_users does
// not list.
func warnUnknownUsers(rules *authz.Rules, web webConfigSummary, logger *slog.Logger) {
	for _, u := range rules.Users() {
		if !web.Users[u] {
			logger.Warn("user of --web.authorization-file not in basic_auth_users of --web.config.file", "user", u)
		}
	}
}

// reloadAuthorizationOnSIGHUP reloads the rules on every SIGHUP until stop
// is closed. A file that does not parse keeps the previous rules, and says
// why at error level.
func reloadAuthorizationOnSIGHUP(h *authz.Holder, web webConfigSummary, logger *slog.Logger, stop <-chan struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				rules, err := h.Reload()
				if err != nil {
					logger.Error("authorization rules not reloaded (SIGHUP)", "err", err)
					continue
				}
				warnUnknownUsers(rules, web, logger)
				logger.Info("authorization rules reloaded", "file", h.Path(), "users", len(rules.Users()))
			}
		}
	}()
}
