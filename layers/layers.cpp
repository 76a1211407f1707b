#include "layers/layers.h"

#include <sstream>

#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/init.h"

namespace glimpse {
namespace {

void check_image(const Tensor& x, const std::string& layer, int64_t channels) {
  GLIMPSE_CHECK(x.defined(), layer, ": the input is an undefined tensor");
  GLIMPSE_CHECK(x.dim() == 4, layer, ": expects an NCHW input [N, C, H, W], got shape ", shape_str(x.shape()));
  if (channels > 0)
    GLIMPSE_CHECK(x.size(1) == channels, layer, ": expects ", channels, " input channels, got shape ",
                  shape_str(x.shape()));
}

Pool2dOptions pool_options(const char* layer, int64_t kernel, int64_t stride, int64_t padding) {
  GLIMPSE_CHECK(kernel > 0, layer, ": kernel must be positive, got ", kernel);
  if (stride <= 0) stride = kernel;
  GLIMPSE_CHECK(padding >= 0 && padding <= kernel / 2, layer, ": padding must be in [0, kernel/2] = [0, ", kernel / 2,
                "], got ", padding);
  return Pool2dOptions::square(kernel, stride, padding);
}

std::string pool_describe(const char* name, const Pool2dOptions& o) {
  std::ostringstream os;
  os << name << "(kernel=" << o.kernel_h << ", stride=" << o.stride_h << ", padding=" << o.pad_h << ")";
  return os.str();
}

}  // namespace

// ---- Conv2d --------------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, Conv2dOptions opt, bool with_bias, Rng& rng)
    : Module("Conv2d"), in_channels(in), out_channels(out), kernel(k), options(opt) {
  GLIMPSE_CHECK(in > 0 && out > 0, "Conv2d: channel counts must be positive, got in=", in, ", out=", out);
  GLIMPSE_CHECK(k > 0, "Conv2d: kernel must be positive, got ", k);
  GLIMPSE_CHECK(opt.stride_h > 0 && opt.stride_w > 0, "Conv2d: stride must be positive, got ", opt.stride_h, "x",
                opt.stride_w);
  GLIMPSE_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0, "Conv2d: padding must be >= 0, got ", opt.pad_h, "x", opt.pad_w);
  GLIMPSE_CHECK(opt.dilation_h > 0 && opt.dilation_w > 0, "Conv2d: dilation must be positive, got ", opt.dilation_h,
                "x", opt.dilation_w);
  GLIMPSE_CHECK(opt.groups > 0 && in % opt.groups == 0 && out % opt.groups == 0, "Conv2d: groups=", opt.groups,
                " must divide in_channels=", in, " and out_channels=", out);
  weight = register_parameter("weight", Tensor::empty({out, in / opt.groups, k, k}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out}));
  init::default_conv_linear_(weight, bias, rng);
}

Tensor Conv2d::forward(const Tensor& x) {
  check_image(x, "Conv2d", in_channels);
  return conv2d(x, weight, bias, options);
}

std::string Conv2d::describe() const {
  std::ostringstream os;
  os << "Conv2d(" << in_channels << ", " << out_channels << ", kernel=" << kernel << ", stride=";
  if (options.stride_h == options.stride_w)
    os << options.stride_h;
  else
    os << "(" << options.stride_h << ", " << options.stride_w << ")";
  os << ", padding=";
  if (options.pad_h == options.pad_w)
    os << options.pad_h;
  else
    os << "(" << options.pad_h << ", " << options.pad_w << ")";
  if (options.dilation_h != 1 || options.dilation_w != 1) os << ", dilation=" << options.dilation_h;
  if (options.groups != 1) os << ", groups=" << options.groups;
  if (!bias.defined()) os << ", bias=false";
  os << ")";
  return os.str();
}

// ---- Linear --------------------------------------------------------------------------------------

Linear::Linear(int64_t in, int64_t out, bool with_bias, Rng& rng)
    : Module("Linear"), in_features(in), out_features(out) {
  GLIMPSE_CHECK(in > 0 && out > 0, "Linear: feature counts must be positive, got in=", in, ", out=", out);
  weight = register_parameter("weight", Tensor::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", Tensor::empty({out}));
  init::default_conv_linear_(weight, bias, rng);
}

Tensor Linear::forward(const Tensor& x) {
  GLIMPSE_CHECK(x.defined(), "Linear: the input is an undefined tensor");
  GLIMPSE_CHECK(x.dim() == 2 && x.size(1) == in_features, "Linear(", in_features, ", ", out_features,
                "): expects an input [N, ", in_features, "], got shape ", shape_str(x.shape()),
                x.dim() > 2 ? "; add a Flatten or GlobalAvgPool before it" : "");
  return linear(x, weight, bias);
}

std::string Linear::describe() const {
  std::ostringstream os;
  os << "Linear(" << in_features << ", " << out_features << (bias.defined() ? "" : ", bias=false") << ")";
  return os.str();
}

// ---- BatchNorm2d ---------------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(int64_t c, float eps_, float momentum_)
    : Module("BatchNorm2d"), num_features(c), eps(eps_), momentum(momentum_) {
  GLIMPSE_CHECK(c > 0, "BatchNorm2d: num_features must be positive, got ", c);
  GLIMPSE_CHECK(eps > 0.f, "BatchNorm2d: eps must be positive, got ", eps);
  GLIMPSE_CHECK(momentum >= 0.f && momentum <= 1.f, "BatchNorm2d: momentum must be in [0, 1], got ", momentum);
  weight = register_parameter("weight", Tensor::ones({c}));
  bias = register_parameter("bias", Tensor::zeros({c}));
  running_mean = register_buffer("running_mean", Tensor::zeros({c}));
  running_var = register_buffer("running_var", Tensor::ones({c}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  check_image(x, "BatchNorm2d", num_features);
  if (training_)
    GLIMPSE_CHECK(x.size(0) * x.size(2) * x.size(3) > 1,
                  "BatchNorm2d: training needs more than one value per "
                  "channel, got input shape ",
                  shape_str(x.shape()), "; use eval() for single images");
  if (training_ && group) return sync_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps, group);
  return batch_norm(x, weight, bias, running_mean, running_var, training_, momentum, eps);
}

std::string BatchNorm2d::describe() const {
  std::ostringstream os;
  os << "BatchNorm2d(" << num_features << ", eps=" << eps << ", momentum=" << momentum << ")";
  return os.str();
}

// ---- activations ---------------------------------------------------------------------------------

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

LeakyReLU::LeakyReLU(float slope) : Module("LeakyReLU"), negative_slope(slope) {
  GLIMPSE_CHECK(slope >= 0.f, "LeakyReLU: negative_slope must be >= 0, got ", slope);
}

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope); }

std::string LeakyReLU::describe() const { return detail::concat("LeakyReLU(negative_slope=", negative_slope, ")"); }

// ---- pooling -------------------------------------------------------------------------------------

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p)
    : Module("MaxPool2d"), options(pool_options("MaxPool2d", k, s, p)) {}

Tensor MaxPool2d::forward(const Tensor& x) {
  check_image(x, "MaxPool2d", 0);
  GLIMPSE_CHECK(x.size(2) + 2 * options.pad_h >= options.kernel_h && x.size(3) + 2 * options.pad_w >= options.kernel_w,
                "MaxPool2d: input ", shape_str(x.shape()), " is smaller than the ", options.kernel_h, "x",
                options.kernel_w, " window; the image is too small for this network");
  return max_pool2d(x, options);
}

std::string MaxPool2d::describe() const { return pool_describe("MaxPool2d", options); }

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p)
    : Module("AvgPool2d"), options(pool_options("AvgPool2d", k, s, p)) {}

Tensor AvgPool2d::forward(const Tensor& x) {
  check_image(x, "AvgPool2d", 0);
  GLIMPSE_CHECK(x.size(2) + 2 * options.pad_h >= options.kernel_h && x.size(3) + 2 * options.pad_w >= options.kernel_w,
                "AvgPool2d: input ", shape_str(x.shape()), " is smaller than the ", options.kernel_h, "x",
                options.kernel_w, " window; the image is too small for this network");
  return avg_pool2d(x, options);
}

std::string AvgPool2d::describe() const { return pool_describe("AvgPool2d", options); }

Tensor GlobalAvgPool::forward(const Tensor& x) {
  check_image(x, "GlobalAvgPool", 0);
  return global_avg_pool(x);
}

// ---- Dropout, Flatten ----------------------------------------------------------------------------

Dropout::Dropout(float p_, uint64_t seed) : Module("Dropout"), p(p_), rng(seed) {
  GLIMPSE_CHECK(p >= 0.f && p < 1.f, "Dropout: p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, training_, rng); }

std::string Dropout::describe() const { return detail::concat("Dropout(p=", p, ")"); }

Tensor Flatten::forward(const Tensor& x) {
  GLIMPSE_CHECK(x.defined() && x.dim() >= 1, "Flatten: needs an input with a batch dimension");
  return flatten(x);
}

// ---- Sequential ----------------------------------------------------------------------------------

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Module("Sequential") {
  for (const auto& m : modules) add(m);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  const auto& ch = children();
  for (size_t i = 0; i < ch.size(); ++i) {
    // Fused pairs, taken only where no forward hook must see either module's input or output (the
    // CAM layer's ReLU has one while a map is made). Inference: a Conv2d and the ReLU right after
    // it run as one kernel (conv2d_relu). Always: a ReLU and the 2x2/stride-2 MaxPool2d right after
    // it (relu_max_pool2x2), which also keeps relu(x) out of the tape.
    if (i + 1 < ch.size() && ch[i].second->num_forward_hooks() == 0 && ch[i + 1].second->num_forward_hooks() == 0) {
      Module* first = ch[i].second.get();
      Module* second = ch[i + 1].second.get();
      const auto* pool = dynamic_cast<const MaxPool2d*>(second);
      if (dynamic_cast<const ReLU*>(first) && pool && pool->options.is_2x2_stride2() && y.dim() == 4 &&
          y.size(2) >= 2 && y.size(3) >= 2) {
        y = relu_max_pool2x2(y);
        ++i;
        continue;
      }
      const auto* conv = dynamic_cast<const Conv2d*>(first);
      if (!grad_enabled() && conv && dynamic_cast<const ReLU*>(second)) {
        check_image(y, "Conv2d", conv->in_channels);
        y = conv2d_relu(y, conv->weight, conv->bias, conv->options);
        ++i;
        continue;
      }
    }
    y = (*ch[i].second)(y);
  }
  return y;
}

std::string Sequential::describe() const { return detail::concat("Sequential(", children().size(), " modules)"); }

std::shared_ptr<Module> Sequential::at(size_t i) const {
  GLIMPSE_CHECK(i < children().size(), "Sequential: index ", i, " out of range; it holds ", children().size(),
                " modules");
  return children()[i].second;
}

Module& Sequential::operator[](size_t i) const { return *at(i); }

// ---- BasicBlock ----------------------------------------------------------------------------------

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t s, Rng& rng)
    : Module("BasicBlock"), in_channels(in), out_channels(out), stride(s) {
  GLIMPSE_CHECK(in > 0 && out > 0, "BasicBlock: channel counts must be positive, got in=", in, ", out=", out);
  GLIMPSE_CHECK(s > 0, "BasicBlock: stride must be positive, got ", s);
  conv1 =
      register_module("conv1", std::make_shared<Conv2d>(in, out, 3, Conv2dOptions().stride(s).padding(1), false, rng));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(out));
  relu1 = register_module("relu1", std::make_shared<ReLU>());
  conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, Conv2dOptions().padding(1), false, rng));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  if (s != 1 || in != out) {
    downsample = register_module("downsample", std::make_shared<Sequential>());
    downsample->add(std::make_shared<Conv2d>(in, out, 1, Conv2dOptions().stride(s), false, rng));
    downsample->add(std::make_shared<BatchNorm2d>(out));
  }
  relu2 = register_module("relu2", std::make_shared<ReLU>());
}

Tensor BasicBlock::forward(const Tensor& x) {
  check_image(x, "BasicBlock", in_channels);
  Tensor out = (*relu1)((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  Tensor shortcut = downsample ? (*downsample)(x) : x;
  return (*relu2)(out + shortcut);
}

std::string BasicBlock::describe() const {
  return detail::concat("BasicBlock(", in_channels, ", ", out_channels, ", stride=", stride,
                        downsample ? ", downsample" : "", ")");
}

}  // namespace glimpse
