#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/metrics_log.h"
#include "glog/logging.h"

namespace ps {

namespace {

constexpr size_t kMaxRequestBytes = 16 << 10;
constexpr int kIoTimeoutSec = 2;

void SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the scraper went away; nothing to tell it
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string Response(absl::string_view status, absl::string_view type,
                     absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

std::string EscapeLabel(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return FormatMetricNumber(v);
}

}  // namespace

std::string PrometheusName(absl::string_view name) {
  std::string out;
  for (char c : name) {
    out += absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                   c == ':'
               ? c
               : '_';
  }
  if (out.empty() || absl::ascii_isdigit(static_cast<unsigned char>(out[0]))) {
    out.insert(out.begin(), '_');
  }
  return out;
}

void PrometheusText::Add(
    absl::string_view name, absl::string_view type, absl::string_view help,
    const std::vector<std::pair<std::string, std::string>>& labels,
    double value) {
  const std::string metric = PrometheusName(name);
  if (std::find(declared_.begin(), declared_.end(), metric) ==
      declared_.end()) {
    declared_.push_back(metric);
    absl::StrAppend(&text_, "# HELP ", metric, " ", help, "\n# TYPE ", metric,
                    " ", type, "\n");
  }
  text_ += metric;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&text_, i > 0 ? "," : "", PrometheusName(labels[i].first),
                      "=\"", EscapeLabel(labels[i].second), "\"");
    }
    text_ += '}';
  }
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

std::string LatestAsPrometheus(
    absl::string_view prefix,
    const std::vector<
        std::pair<std::string, std::vector<std::pair<std::string, double>>>>&
        latest,
    const std::vector<std::pair<std::string, std::string>>& labels) {
  PrometheusText text;
  for (const auto& [type, fields] : latest) {
    for (const auto& [field, value] : fields) {
      text.Add(
          absl::StrCat(prefix, "_", type, "_", field), "gauge",
          absl::StrCat("the last '", field, "' of the '", type, "' metrics"),
          labels, value);
    }
  }
  return text.text();
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, Render render) {
  std::string host;
  std::string port_text = address;
  if (const size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]
  }
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address,
        "': expected host:port, :port or port (0 picks a free port)"));
  }
  // No host: every interface, IPv6 first (dual-stack, so IPv4 scrapers get
  // in too), then IPv4 where the machine has no IPv6.
  const std::vector<int> families = host.empty()
                                        ? std::vector<int>{AF_INET6, AF_INET}
                                        : std::vector<int>{AF_UNSPEC};
  int fd = -1;
  std::string error = "no address";
  for (int family : families) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int gai = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                port_text.c_str(), &hints, &found);
    if (gai != 0) {
      error = gai_strerror(gai);
      if (!host.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("metrics address '", address, "': ", error));
      }
      continue;
    }
    for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
      fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        error = strerror(errno);
        continue;
      }
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (a->ai_family == AF_INET6 && host.empty()) {
        const int zero = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
      }
      if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        error = strerror(errno);
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(found);
    if (fd >= 0) break;
  }
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on '", address, "': ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port =
      bound.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(fd, bound_port, std::move(render)));
  if (pipe2(server->wake_, O_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat("metrics server: pipe: ", strerror(errno)));
  }
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsHttpServer::MetricsHttpServer(int fd, int port, Render render)
    : listen_fd_(fd), port_(port), render_(std::move(render)) {}

MetricsHttpServer::~MetricsHttpServer() {
  if (thread_.joinable()) {
    const char stop = 1;
    while (write(wake_[1], &stop, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
  close(listen_fd_);
}

void MetricsHttpServer::Loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG(ERROR) << "metrics server: poll: " << strerror(errno);
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      // Out of descriptors, say: do not spin on a listen socket that stays
      // readable.
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      continue;
    }
    Serve(client);
    close(client);
  }
}

void MetricsHttpServer::Serve(int client) {
  timeval timeout{kIoTimeoutSec, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // A whole request within 2 * kIoTimeoutSec, however slowly it trickles.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(2 * kIoTimeoutSec);
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos &&
         request.size() < kMaxRequestBytes) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd readable{client, POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buffer, static_cast<size_t>(n));
  }
  SendAll(client, MetricsHttpResponse(request, render_));
}

std::string MetricsHttpResponse(absl::string_view request,
                                const MetricsHttpServer::Render& render) {
  const absl::string_view line =
      request.substr(0, request.find_first_of("\r\n"));
  std::vector<absl::string_view> parts =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/")) {
    return Response("400 Bad Request", "text/plain",
                    "expected: GET /metrics HTTP/1.1\n");
  }
  if (parts[0] != "GET" && parts[0] != "HEAD") {
    return Response("405 Method Not Allowed", "text/plain",
                    "only GET /metrics is served\n");
  }
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    return Response("404 Not Found", "text/plain", "metrics are at /metrics\n");
  }
  std::string response =
      Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render());
  if (parts[0] == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  return response;
}

}  // namespace ps
