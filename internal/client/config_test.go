package client

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var testEnv = Env{Home: "/home/u"}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("/etc/c/client.toml", []byte("host = \"signing-host\"\nwitness = false\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/home/u/.local/state/signstar" || c.Certificate != "/home/u/.local/state/signstar/certificate.asc" || c.SSH != "ssh" {
		t.Errorf("defaults: %+v", c)
	}
	if got := (Env{Home: "/h", ConfigHome: "/x"}).DefaultPath(); got != "/x/signstar/client.toml" {
		t.Errorf("DefaultPath with XDG_CONFIG_HOME: %s", got)
	}
	if got := (Env{Home: "/h", ConfigHome: "rel"}).DefaultPath(); got != "/h/.config/signstar/client.toml" {
		t.Errorf("DefaultPath with a relative XDG_CONFIG_HOME: %s", got)
	}
	c, err = Parse("/etc/c/client.toml", []byte("host = \"h\"\nwitness = false\nstate_dir = \"~/st\"\ncertificate = \"pin.asc\"\nssh = \"bin/ssh\"\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/home/u/st" || c.Certificate != "/etc/c/pin.asc" || c.SSH != "/etc/c/bin/ssh" {
		t.Errorf("paths: %+v", c)
	}
}

func TestParseErrorsHaveLines(t *testing.T) {
	_, err := Parse("c.toml", []byte("host = \"h\"\n\nport = 0x1_0000_0\n"), testEnv)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 3 || ce.Key != "port" {
		t.Fatalf("%v", err)
	}
	if !strings.HasPrefix(err.Error(), "c.toml:3: port: ") {
		t.Errorf("%q", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("host = \"signing-host\"\nuser = \"signer\"\nprofile = \"repo\"\n"))
	f.Add([]byte("host = \"h\"\nport = 2222\nssh_options = [\"-o\", \"ControlMaster=auto\"]\nstate_dir = \"~/s\"\n"))
	f.Add([]byte("host = \"-oProxyCommand=x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data, testEnv)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || strings.ContainsAny(ce.File, "\n") {
				t.Fatalf("not a ConfigError: %v", err)
			}
			return
		}
		if checkHost(c.Host) != nil || strings.HasPrefix(c.Destination(), "-") {
			t.Fatalf("accepted host %q", c.Host)
		}
	})
}

// TestKeysTable holds the key table equal to Config's TOML tags.
func TestKeysTable(t *testing.T) {
	var tags []string
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		if tag := typ.Field(i).Tag.Get("toml"); tag != "-" {
			tags = append(tags, tag)
		}
	}
	if !reflect.DeepEqual(tags, keyNameList()) {
		t.Errorf("Config's keys %v, the table's %v", tags, keyNameList())
	}
}
