// Prometheus metrics over HTTP (docs/architecture.md, Observability): a minimal
// HTTP/1.1 server that answers GET /metrics with the text exposition format
// (version 0.0.4) of whatever its render function returns, and the helpers
// that write that format. For scrapes: one request at a time on its own
// thread, each answered and closed; other paths get 404, other methods 405,
// a malformed or slow request 400.
#ifndef PS_COMMON_METRICS_HTTP_H_
#define PS_COMMON_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

class MetricsHttpServer {
 public:
  // Returns the metrics text; called on the server's thread.
  using Render = std::function<std::string()>;

  // Listens on `address`: "host:port", ":port" (every interface) or
  // "port"; port 0 picks a free one. InvalidArgument for an address it
  // cannot parse, Unavailable when it cannot bind (the message names it).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, Render render);
  ~MetricsHttpServer();  // stops serving and joins the thread

  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int port, Render render);
  void Loop();
  void Serve(int client);

  const int listen_fd_;
  const int port_;
  const Render render_;
  int wake_[2] = {-1, -1};  // a pipe: written to stop the loop
  std::thread thread_;
};

// The whole HTTP response to `request`, the bytes a scraper sent (its
// request line and headers, possibly cut short at the size or time limit):
// 200 with render()'s text for GET /metrics (a query string ignored), the
// same head without the body for HEAD, 404 for another path, 405 for
// another method, 400 when the request line is not "METHOD PATH HTTP/...".
// render is called only for a 200 or a HEAD. Thread-safe when render is.
std::string MetricsHttpResponse(absl::string_view request,
                                const MetricsHttpServer::Render& render);

// Lines of the text format.
class PrometheusText {
 public:
  // "# HELP name help" and "# TYPE name type" once per name (the first
  // time it is used), then "name{k="v",...} value". Names and label names
  // are made valid (other characters become '_'); label values are
  // escaped. NaN and infinities are written as Prometheus spells them.
  void Add(absl::string_view name, absl::string_view type,
           absl::string_view help,
           const std::vector<std::pair<std::string, std::string>>& labels,
           double value);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> declared_;
};

// `name` with every character outside [a-zA-Z0-9_:] replaced by '_' (and a
// leading digit prefixed with '_').
std::string PrometheusName(absl::string_view name);

// The latest fields of a MetricsLog (MetricsLog::Latest) as gauges
// "<prefix>_<type>_<field>{labels} value", e.g. ps_worker_train_auc.
std::string LatestAsPrometheus(
    absl::string_view prefix,
    const std::vector<
        std::pair<std::string, std::vector<std::pair<std::string, double>>>>&
        latest,
    const std::vector<std::pair<std::string, std::string>>& labels);

}  // namespace ps

#endif  // PS_COMMON_METRICS_HTTP_H_
