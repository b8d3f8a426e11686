package devserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// ServerView is a registered SSH server as the operator API shows it: never
// its private key or password, only whether it has one.
type ServerView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Host        string    `json:"host"`
	Port        int       `json:"port"`
	Username    string    `json:"username"`
	HasKey      bool      `json:"hasKey"`
	HasPassword bool      `json:"hasPassword"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Auth is how the server is logged into: "key" or "password".
func (v ServerView) Auth() string {
	if v.HasKey {
		return "key"
	}
	if v.HasPassword {
		return "password"
	}
	return "-"
}

func (sr *serverRecord) view() ServerView {
	return ServerView{
		ID: sr.ID, Name: sr.Name, Host: sr.Host, Port: sr.Port, Username: sr.Username,
		HasKey: sr.PrivateKey != "", HasPassword: sr.Password != "", CreatedAt: sr.CreatedAt,
	}
}

// CheckPrivateKey reports whether key is an unencrypted private key that an
// SSH client can use (OpenSSH, PKCS#1, PKCS#8 or SEC 1 PEM). The error never
// quotes the key.
func CheckPrivateKey(key string) error {
	if strings.TrimSpace(key) == "" {
		return errors.New("empty")
	}
	if _, err := ssh.ParseRawPrivateKey([]byte(key)); err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return errors.New("protected by a passphrase, which the contract has no field for: give an unencrypted key")
		}
		return fmt.Errorf("not a private key (%v)", err)
	}
	return nil
}

// checkServer validates a server to register and fills in its default port.
// Every problem is named in one message.
func checkServer(sv *api.Server) error {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	sv.ID = strings.TrimSpace(sv.ID)
	if sv.ID != "" {
		if n, err := strconv.ParseUint(sv.ID, 10, 63); err != nil || n == 0 || strconv.FormatUint(n, 10) != sv.ID {
			bad("id must be a positive integer without leading zeros (executions/create sends it as a number), got %q", sv.ID)
		}
	}
	sv.Name = strings.TrimSpace(sv.Name)
	if hasControl(sv.Name) {
		bad("name must not hold control characters")
	}
	sv.Host = strings.TrimSpace(sv.Host)
	switch {
	case sv.Host == "":
		bad("host is required")
	case strings.IndexFunc(sv.Host, unicode.IsSpace) >= 0 || hasControl(sv.Host):
		bad("host must not hold blanks or control characters")
	}
	switch {
	case sv.Port == 0:
		sv.Port = 22
	case sv.Port < 1 || sv.Port > 65535:
		bad("port must be between 1 and 65535, got %d", sv.Port)
	}
	switch {
	case sv.Username == "":
		bad("username is required")
	case strings.IndexFunc(sv.Username, unicode.IsSpace) >= 0 || hasControl(sv.Username):
		bad("username must not hold blanks or control characters")
	}
	switch {
	case sv.PrivateKey == "" && sv.Password == "":
		bad("privateKey or password is required")
	case sv.PrivateKey != "" && sv.Password != "":
		bad("give privateKey or password, not both")
	case sv.PrivateKey != "":
		if err := CheckPrivateKey(sv.PrivateKey); err != nil {
			bad("privateKey: %v", err)
		}
	}
	if len(probs) > 0 {
		return errf(http.StatusBadRequest, "%s", strings.Join(probs, "; "))
	}
	return nil
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// handleDevServerAdd registers an SSH server (or replaces the one with the
// id given). The key is kept exactly as sent (the deployed backend hands it
// out byte for byte); the answer never holds it.
func (s *Server) handleDevServerAdd(w http.ResponseWriter, r *http.Request) {
	var sv api.Server
	if _, err := decodeBody(r, &sv, true); err != nil {
		fail(w, err)
		return
	}
	if err := checkServer(&sv); err != nil {
		fail(w, err)
		return
	}
	rec := serverRecord{Server: sv, CreatedAt: s.now()}
	err := s.update(func(tx *bolt.Tx) error {
		if rec.ID == "" {
			for {
				rec.ID = strconv.FormatUint(nextCounter(tx, "serverId"), 10)
				if tx.Bucket(bServers).Get([]byte(rec.ID)) == nil {
					break
				}
			}
		}
		if rec.Name == "" {
			rec.Name = "server-" + rec.ID
		}
		b, err := marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bServers).Put([]byte(rec.ID), b)
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": rec.ID, "server": rec.view()})
}

// handleDevServers lists the registered servers by id, without their
// secrets.
func (s *Server) handleDevServers(w http.ResponseWriter, r *http.Request) {
	out := []ServerView{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bServers).ForEach(func(_, v []byte) error {
			sr, err := unmarshalServer(v)
			if err != nil {
				return err
			}
			out = append(out, sr.view())
			return nil
		})
	})
	if err != nil {
		fail(w, err)
		return
	}
	sort.Slice(out, func(a, b int) bool { return idLess(out[a].ID, out[b].ID) })
	writeJSON(w, http.StatusOK, map[string]any{"servers": out, "count": len(out)})
}

// handleDevServerRemove forgets a server. Jobs already queued keep the
// details they were built with; one built with OmitServerDetails then gets
// 404 from servers/{id}/credentials.
func (s *Server) handleDevServerRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.update(func(tx *bolt.Tx) error {
		if _, err := loadServer(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bServers).Delete([]byte(id))
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "removed": true})
}

func unmarshalServer(v []byte) (*serverRecord, error) {
	var sr serverRecord
	if err := json.Unmarshal(v, &sr); err != nil {
		return nil, err
	}
	return &sr, nil
}

// idLess orders numeric ids by value, and any other id after them, by text.
func idLess(a, b string) bool {
	na, ea := strconv.ParseUint(a, 10, 64)
	nb, eb := strconv.ParseUint(b, 10, 64)
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}

// serversOf returns the servers a submit request names, in its order:
// ServerIDs, or ServerID alone.
func (req SubmitRequest) serversOf() ([]string, error) {
	if req.ServerID != "" && len(req.ServerIDs) > 0 {
		return nil, errf(http.StatusBadRequest, "give serverId or serverIds, not both")
	}
	ids := req.ServerIDs
	if req.ServerID != "" {
		ids = []string{req.ServerID}
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			return nil, errf(http.StatusBadRequest, "serverIds holds an empty id")
		}
		if seen[id] {
			return nil, errf(http.StatusBadRequest, "server %s is named twice", id)
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}

// loadServers reads the named servers, with their secrets; an unknown one
// is a 400 naming it.
func loadServers(tx *bolt.Tx, ids []string) ([]api.Server, error) {
	out := make([]api.Server, 0, len(ids))
	var unknown []string
	for _, id := range ids {
		sr, err := loadServer(tx, id)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.code == http.StatusNotFound:
			unknown = append(unknown, id)
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, sr.Server)
	}
	switch len(unknown) {
	case 0:
		return out, nil
	case 1:
		return nil, errf(http.StatusBadRequest, "server %s is not registered (cronium-backend servers list; POST /api/dev/servers)", unknown[0])
	}
	return nil, errf(http.StatusBadRequest, "servers %s are not registered (cronium-backend servers list; POST /api/dev/servers)", strings.Join(unknown, ", "))
}
