package schemas

import "fmt"

// UserKey returns "<tenant>.<user>", the prefix of every KV key that holds one user's
// state (users, refresh families, rate windows, active slots, the job index). Both ids
// must be subject tokens (ValidToken), so a user's keys can be selected, and erased,
// with one subject filter.
func UserKey(tenant, user string) (string, error) {
	if err := ValidToken(tenant); err != nil {
		return "", fmt.Errorf("tenant: %w", err)
	}
	if err := ValidToken(user); err != nil {
		return "", fmt.Errorf("user: %w", err)
	}
	return tenant + "." + user, nil
}
