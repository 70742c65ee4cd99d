// Example native authorization and authentication modules:
//   org_pymesos_RoleAuthorizer    which principals may register in which roles,
//                                 and which users tasks may never run as
//   org_pymesos_BearerAuthenticator  `Authorization: Bearer <token>` against a
//                                 token -> principal table
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bundled.h"
#include "pymesos_modules/authorizer.h"
#include "pymesos_modules/http_authenticator.h"
#include "pymesos_modules/module.hpp"

namespace {

using json = nlohmann::json;

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, separator))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::set<std::string> as_set(const std::vector<std::string>& values) {
  return std::set<std::string>(values.begin(), values.end());
}

// "key=a,b;key2=c" (or ':' for tokens) -> key -> values, naming the parameter on error.
// A secret parameter's entries are never quoted in a message (it may reach a log).
std::map<std::string, std::set<std::string>> table(const std::string& text, const char* parameter,
                                                   char between, bool secret = false) {
  std::map<std::string, std::set<std::string>> out;
  int index = 0;
  for (const std::string& entry : split(text, ';')) {
    ++index;
    auto at = entry.find(between);
    if (at == std::string::npos || at == 0 || at + 1 == entry.size())
      throw pmm::Error(PMM_ERR_INVALID,
                       std::string("parameter '") + parameter + "': " +
                           (secret ? "entry " + std::to_string(index) : "'" + entry + "'") +
                           " is not key" + between + "value");
    out[entry.substr(0, at)] = as_set(split(entry.substr(at + 1), ','));
  }
  return out;
}

json parse_object(const char* text, const char* what) {
  json value = json::parse(text != nullptr ? text : "", nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object())
    throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is not a JSON object");
  return value;
}

class RoleAuthorizer {
 public:
  RoleAuthorizer(pmm::Host host, const pmm::Parameters& params)
      : host_(host),
        roles_(table(params.get_or("roles", ""), "roles", '=')),
        forbidden_users_(as_set(split(params.get_or("forbidden_users", ""), ','))) {}

  bool authorized(const char* request_json) {
    json request = parse_object(request_json, "request_json");
    std::string action = request.value("action", "");
    std::string object = request.contains("object") ? request["object"].value("value", "") : "";
    std::string subject = request.contains("subject") ? request["subject"].value("value", "") : "";
    bool allowed = true;
    if (action == "REGISTER_FRAMEWORK") {
      auto it = roles_.find(object);
      allowed = it == roles_.end() || it->second.count("*") > 0 || it->second.count(subject) > 0;
    } else if (action == "RUN_TASK") {
      allowed = forbidden_users_.count(object) == 0;
    } else {
      throw pmm::Error(PMM_ERR_INVALID, "unknown action '" + action + "'");
    }
    if (!allowed) host_.counter_add("role_authorizer/denied", 1);
    return allowed;
  }

 private:
  pmm::Host host_;
  std::map<std::string, std::set<std::string>> roles_;
  std::set<std::string> forbidden_users_;
};

class BearerAuthenticator {
 public:
  BearerAuthenticator(pmm::Host, const pmm::Parameters& params) {
    for (const auto& [token, principals] : table(params.require("tokens"), "tokens", ':', true)) {
      if (principals.size() != 1)
        throw pmm::Error(PMM_ERR_INVALID, "parameter 'tokens': a token names one principal");
      principals_[token] = *principals.begin();
    }
  }

  std::string authenticate(const char* headers_json) {
    json headers = parse_object(headers_json, "headers_json");
    const json challenge = "Bearer realm=\"mesos\"";
    std::string header;
    for (const auto& [name, value] : headers.items()) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "authorization" && value.is_string()) header = value.get<std::string>();
    }
    if (header.empty())
      return json{{"status", 401}, {"message", "Missing 'Authorization' header"}, {"challenge", challenge}}.dump();
    // RFC 7235: the scheme is case-insensitive ("bearer", "BEARER"); one or more spaces follow.
    auto space = header.find(' ');
    std::string scheme = header.substr(0, space);
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "bearer" || space == std::string::npos)
      return json{{"status", 401}, {"message", "Unsupported authentication scheme"}, {"challenge", challenge}}.dump();
    auto start = header.find_first_not_of(' ', space);
    auto it = principals_.find(start == std::string::npos ? std::string() : header.substr(start));
    if (it == principals_.end())
      return json{{"status", 401}, {"message", "Unknown bearer token"}, {"challenge", challenge}}.dump();
    return json{{"principal", it->second}}.dump();
  }

 private:
  std::map<std::string, std::string> principals_;
};

const pmm_authorizer_vtable kAuthorizerTable = [] {
  pmm_authorizer_vtable t{};
  t.struct_size = sizeof t;
  t.authorized = [](void* self, const char* request, int32_t* allowed, pmm_error* error) noexcept {
    return pmm::call<RoleAuthorizer>(self, error, [&](RoleAuthorizer& a) {
      if (allowed == nullptr) throw pmm::Error(PMM_ERR_INVALID, "allowed is NULL");
      *allowed = a.authorized(request) ? 1 : 0;
    });
  };
  return t;
}();

const pmm_http_authenticator_vtable kAuthenticatorTable = [] {
  pmm_http_authenticator_vtable t{};
  t.struct_size = sizeof t;
  t.authenticate = [](void* self, const char* headers, pmm_output* out, pmm_error* error) noexcept {
    return pmm::call<BearerAuthenticator>(self, error, [&](BearerAuthenticator& a) {
      pmm::write(out, a.authenticate(headers));
    });
  };
  return t;
}();

const pmm_module_descriptor kAuthorizer = pmm::describe_bundled<RoleAuthorizer>(
    PMM_KIND_AUTHORIZER, "org_pymesos_RoleAuthorizer",
    "Who may register in which role (parameter 'roles': role=p1,p2;...), which users tasks may "
    "not run as ('forbidden_users')",
    &kAuthorizerTable);
const pmm_module_descriptor kAuthenticator = pmm::describe_bundled<BearerAuthenticator>(
    PMM_KIND_HTTP_AUTHENTICATOR, "org_pymesos_BearerAuthenticator",
    "HTTP bearer tokens against a table (parameter 'tokens': token:principal;...)",
    &kAuthenticatorTable);

}  // namespace

PMM_EXPORT_MODULES(&kAuthorizer, &kAuthenticator)
