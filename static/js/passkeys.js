// Passkeys: the buttons with data-begin and data-finish run a WebAuthn ceremony. Without
// this file, or in a browser without passkeys, the buttons stay hidden and every page
// works with its password and code forms as before.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return;
  }

  function fromBase64URL(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }

  function toBase64URL(buf) {
    if (!buf) {
      return undefined;
    }
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) {
      s += String.fromCharCode(bytes[i]);
    }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeDescriptors(list) {
    (list || []).forEach(function (d) {
      d.id = fromBase64URL(d.id);
    });
  }

  // creationOptions and requestOptions turn the server's JSON into what
  // navigator.credentials takes: the binary members as ArrayBuffers.
  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromBase64URL(pk.challenge);
    pk.user.id = fromBase64URL(pk.user.id);
    decodeDescriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromBase64URL(pk.challenge);
    decodeDescriptors(pk.allowCredentials);
    return { publicKey: pk };
  }

  function credentialJSON(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toBase64URL(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64URL(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64URL(r.authenticatorData);
      response.signature = toBase64URL(r.signature);
      if (r.userHandle) {
        response.userHandle = toBase64URL(r.userHandle);
      }
    }
    return {
      id: cred.id,
      rawId: toBase64URL(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: response
    };
  }

  function csrfToken() {
    var field = document.querySelector('input[name="_csrf"]');
    return field ? field.value : "";
  }

  // post sends JSON with the page's CSRF token and reads the JSON answer; a refusal
  // becomes an Error carrying the server's words.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () {
        return { error: "The portal answered unexpectedly (" + resp.status + ")." , hint: "Reload the page and try again." };
      }).then(function (data) {
        if (!resp.ok) {
          var msg = data.error || "The request was refused.";
          if (data.hint) {
            msg += " " + data.hint;
          }
          if (data.request_id) {
            msg += " (Request id " + data.request_id + ".)";
          }
          throw new Error(msg);
        }
        return data;
      });
    });
  }

  // fields are the named inputs beside the button that go with the request.
  function fields(box) {
    var out = {};
    box.querySelectorAll("input[name]").forEach(function (input) {
      if (input.name !== "_csrf") {
        out[input.name] = input.value;
      }
    });
    return out;
  }

  function browserWords(err) {
    switch (err && err.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. Try again.";
      case "InvalidStateError":
        return "This authenticator is already registered to your account.";
      case "SecurityError":
        return "The browser refused passkeys for this address.";
    }
    return err && err.message ? err.message : "Something went wrong. Try again.";
  }

  function run(button) {
    var box = button.closest(".passkey-box") || document.body;
    var alert = box.querySelector('[role="alert"]');
    var create = button.getAttribute("data-ceremony") === "create";
    var extra = fields(box);
    if (alert) {
      alert.hidden = true;
      alert.textContent = "";
    }
    button.disabled = true;
    post(button.getAttribute("data-begin"), extra).then(function (options) {
      return create ? navigator.credentials.create(creationOptions(options))
        : navigator.credentials.get(requestOptions(options));
    }).then(function (cred) {
      var body = { credential: credentialJSON(cred) };
      if (extra.passkey_name !== undefined) {
        body.passkey_name = extra.passkey_name;
      }
      if (extra.next) {
        body.next = extra.next;
      }
      return post(button.getAttribute("data-finish"), body);
    }).then(function (done) {
      window.location.assign(done.redirect || "/");
    }).catch(function (err) {
      button.disabled = false;
      if (alert) {
        alert.textContent = browserWords(err);
        alert.hidden = false;
      }
    });
  }

  document.querySelectorAll("button[data-begin][data-finish]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      run(button);
    });
  });
  document.querySelectorAll("[data-passkey-nojs]").forEach(function (note) {
    note.hidden = true;
  });
})();
