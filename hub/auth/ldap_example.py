"""Log in with the university's directory (LDAP / Active Directory) instead of local accounts.

Copy this file outside the repository, fill in the `example` values from the directory's admins,
and start the hub with it loaded last:

    sudo HUB_EXTRA_CONFIG=/etc/digm-hub/auth.py make hub

The hub still starts each server as the Unix user of the same name: on a machine joined to the
directory (sssd, winbind) the accounts already exist. tests/test_hub_configs.py loads this file and
builds the authenticator from it; no real directory has been contacted.
"""

c = get_config()  # noqa: F821  (JupyterHub injects get_config into config files)

c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
c.LDAPAuthenticator.server_address = "ldap.example.org"
c.LDAPAuthenticator.server_port = 636
c.LDAPAuthenticator.tls_strategy = "on_connect"  # LDAPS: passwords never cross the network in clear
# How a login name becomes the directory's name for the user.
c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=example,dc=org"]
# Who may log in: the course's groups in the directory.
c.LDAPAuthenticator.allowed_groups = [
    "cn=digm-students,ou=groups,dc=example,dc=org",
    "cn=digm-instructors,ou=groups,dc=example,dc=org",
]
c.LDAPAuthenticator.lookup_dn = False
