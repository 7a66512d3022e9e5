package colour

import (
	"crypto/sha256"
	"fmt"
)

// Profile is a parsed ICC profile. It is immutable and safe for concurrent
// use; its conversion methods share cached transforms.
type Profile struct {
	data  []byte
	sum   [32]byte
	space Space
	desc  string
	srgb  bool // recognised as sRGB without Little CMS (builds without cgo)
}

// Bytes returns the profile as it was embedded, byte for byte. The caller
// must not modify it.
func (p *Profile) Bytes() []byte { return p.data }

// Space returns the device colour space of the profile.
func (p *Profile) Space() Space { return p.space }

// Description returns the profile's description tag ("Adobe RGB (1998)"),
// or "" when it has none.
func (p *Profile) Description() string { return p.desc }

// Name returns the description, or a placeholder naming the colour space
// when the profile has no description; for messages and job records.
func (p *Profile) Name() string {
	if p.desc != "" {
		return p.desc
	}
	return fmt.Sprintf("unnamed %s profile", p.space)
}

// SHA256 returns the hash of the profile bytes, the key of its transforms.
func (p *Profile) SHA256() [32]byte { return p.sum }

func newProfile(data []byte, space Space, desc string) *Profile {
	return &Profile{data: data, sum: sha256.Sum256(data), space: space, desc: desc}
}
