"""Log in with the university's single sign-on (OAuth 2 / OpenID Connect) instead of local accounts.

Copy this file outside the repository (it will hold a secret), fill in the `example` values from
the identity provider's registration of the hub (redirect URL: https://<your hub>/hub/oauth_callback),
and start the hub with it loaded last:

    sudo HUB_EXTRA_CONFIG=/etc/digm-hub/auth.py HUB_IP=127.0.0.1 make hub    # behind the TLS proxy

On one machine each login name must also be a Unix account (servers run as that user): let the hub
create missing accounts (`c.LocalGenericOAuthenticator.create_system_users = True`, below), or
create them from the class list. tests/test_hub_configs.py loads this file and builds the
authenticator from it; no real provider has been contacted.
"""

import os

c = get_config()  # noqa: F821  (JupyterHub injects get_config into config files)

# "local-generic-oauth": OAuth login, and the user is a local Unix account on this machine.
# On Kubernetes (hub/k8s/values.yaml) the plain "generic-oauth" is used instead.
c.JupyterHub.authenticator_class = "local-generic-oauth"
c.LocalGenericOAuthenticator.create_system_users = True

c.GenericOAuthenticator.client_id = "example-client-id"
# Never commit the secret: read it from the environment of the hub's service.
c.GenericOAuthenticator.client_secret = os.environ.get("HUB_OAUTH_SECRET", "example-secret")
c.GenericOAuthenticator.oauth_callback_url = "https://digm.example.org/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = "https://sso.example.org/oauth2/authorize"
c.GenericOAuthenticator.token_url = "https://sso.example.org/oauth2/token"
c.GenericOAuthenticator.userdata_url = "https://sso.example.org/oauth2/userinfo"
c.GenericOAuthenticator.scope = ["openid", "profile"]
# The claim that becomes the user name (and Unix account name): short, lower case, no "@".
c.GenericOAuthenticator.username_claim = "preferred_username"
# Who may log in: members of these groups at the identity provider (the class list).
c.GenericOAuthenticator.claim_groups_key = "groups"
c.GenericOAuthenticator.manage_groups = True  # the provider's groups become the hub's (needed for the claim)
c.GenericOAuthenticator.allowed_groups = {"digm-students", "digm-instructors"}
c.GenericOAuthenticator.admin_groups = {"digm-instructors"}

# GitHub instead (e.g. a summer school): members of a GitHub organisation's team.
# c.JupyterHub.authenticator_class = "local-github"
# c.GitHubOAuthenticator.allowed_organizations = {"example-org:digm-2026"}
