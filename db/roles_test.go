package db

import "testing"

func TestRoleCapabilities(t *testing.T) {
	for _, tc := range []struct {
		role              string
		admin, canPublish bool
	}{
		{RoleStaff, false, false},
		{RolePublisher, false, true},
		{RoleAdmin, true, true},
		{"", false, false},
	} {
		t.Run("role "+tc.role, func(t *testing.T) {
			u := User{Role: tc.role}
			if u.IsAdmin() != tc.admin || u.CanPublish() != tc.canPublish {
				t.Fatalf("IsAdmin %v, CanPublish %v; want %v, %v", u.IsAdmin(), u.CanPublish(), tc.admin, tc.canPublish)
			}
		})
	}
}
