# Plain PyTorch training loop, the yardstick of issue 21: see README.md beside this file.
import argparse, csv, json, math, os, random, sys, time, importlib.util
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
import torchvision

torch.set_num_threads(int(os.environ.get('THREADS','1')))

# ---- official FreqFusion, fallback carafe prints shapes: silence by shadowing print in its module
_spec = importlib.util.spec_from_file_location('ffo', os.environ['FREQFUSION_REF'])
ffo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ffo)
ffo.print = lambda *a, **k: None  # equivalent to redirect_stdout for the module's prints
FreqFusion = ffo.FreqFusion

# The reference's fallback CARAFE pads by reflection, which needs a map larger than the pad (2) on each side; an 84x64
# digits-seg image gives a 3x2 map at 1/32. Zero padding instead (what MLNetFreqFusion's CARAFE does); nothing else changes.
_orig_pad = ffo.F.pad
class _FZ:
    def __getattr__(self, k):
        return getattr(F, k)
    @staticmethod
    def pad(x, pad, mode='constant', value=0.0):
        if mode == 'reflect':
            mode = 'constant'
        return _orig_pad(x, pad=pad, mode=mode, value=value) if mode == 'constant' else _orig_pad(x, pad=pad, mode=mode)
ffo.F = _FZ()

ROOT = None  # set from --root
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


def load_split(ds, split, n=None):
    rows = list(csv.DictReader(open(f'{ROOT}/{ds}/{split}.csv')))
    if n is not None:
        rows = rows[:n]
    ims = np.stack([np.array(Image.open(f'{ROOT}/{ds}/{r["ImagePath"]}').convert('RGB')) for r in rows])
    ms = np.stack([np.array(Image.open(f'{ROOT}/{ds}/{r["MaskPath"]}')) for r in rows])
    x = torch.from_numpy(ims).permute(0, 3, 1, 2).float()  # raw 0..255
    y = torch.from_numpy(ms).long()
    return x, y


def pad32(x, y=None):
    H, W = x.shape[-2:]
    Hp, Wp = math.ceil(H / 32) * 32, math.ceil(W / 32) * 32
    x = F.pad(x, (0, Wp - W, 0, Hp - H), value=0.0)  # raw pixel 0 (black)
    if y is not None:
        y = F.pad(y, (0, Wp - W, 0, Hp - H), value=255)
    return x, y


def norm(x):
    if PRETRAINED:
        return x.flip(1) - BGR_MEAN
    return (x - MEAN) / STD


# ---------------- models
BGR_MEAN = torch.tensor([103.06262401521815, 115.90288236463556, 123.1516307762691]).view(1, 3, 1, 1)


def onnx_resnet18(onnx_path, map_path):
    """The ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18: torchvision layout with 3 blocks in layer4,
    weights by the name map of ../shared/reference/resnet18-onnx (BGR input minus a mean, no std)."""
    import onnx
    from onnx import numpy_helper
    from torchvision.models.resnet import ResNet, BasicBlock
    r = ResNet(BasicBlock, [2, 2, 2, 3])
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(onnx_path).graph.initializer}
    sd = r.state_dict()
    n = 0
    for line in open(map_path):
        name, init, _ = line.rstrip('\n').split('\t')
        if name in sd:
            sd[name] = torch.from_numpy(inits[init].copy()).reshape(sd[name].shape)
            n += 1
    r.load_state_dict(sd)
    assert n == 110, n
    return r


PRETRAINED = None  # (onnx, map) when --pretrained


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        r = onnx_resnet18(*PRETRAINED) if PRETRAINED else torchvision.models.resnet18(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4

    def forward(self, x):
        x = self.stem(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BilinearHead(nn.Module):  # SegFormer all-MLP head
    def __init__(self, ncls, E=128, chans=(64, 128, 256, 512)):
        super().__init__()
        self.lin = nn.ModuleList([nn.Conv2d(c, E, 1) for c in chans])
        self.fuse = conv_bn_relu(4 * E, E)
        self.drop = nn.Dropout2d(0.1)
        self.cls = nn.Conv2d(E, ncls, 1)

    def forward(self, feats):
        size = feats[0].shape[-2:]
        outs = []
        for f, l in zip(feats, self.lin):
            o = l(f)
            if o.shape[-2:] != size:
                o = F.interpolate(o, size=size, mode='bilinear', align_corners=False)
            outs.append(o)
        y = self.fuse(torch.cat(outs[::-1], 1))  # SegFormer order [c4,c3,c2,c1]
        return self.cls(self.drop(y))


class FreqFusionHead(nn.Module):  # official FreqFusion concat recipe
    def __init__(self, ncls, c=128, chans=(64, 128, 256, 512)):
        super().__init__()
        self.lin = nn.ModuleList([nn.Conv2d(ch, c, 1) for ch in chans])
        kw = dict(scale_factor=1, lowpass_kernel=5, highpass_kernel=3, up_group=1, upsample_mode='nearest',
                  align_corners=False, feature_resample=True, feature_resample_group=4,
                  comp_feat_upsample=True, hamming_window=False, semi_conv=True)
        self.ff1 = FreqFusion(hr_channels=c, lr_channels=c, compressed_channels=(c + c) // 4, **kw)
        self.ff2 = FreqFusion(hr_channels=c, lr_channels=2 * c, compressed_channels=(c + 2 * c) // 4, **kw)
        self.ff3 = FreqFusion(hr_channels=c, lr_channels=3 * c, compressed_channels=(c + 3 * c) // 4, **kw)
        self.fuse = conv_bn_relu(4 * c, 128)
        self.drop = nn.Dropout2d(0.1)
        self.cls = nn.Conv2d(128, ncls, 1)

    def forward(self, feats):
        x1, x2, x3, x4 = [l(f) for f, l in zip(feats, self.lin)]
        _, x3, x4u = self.ff1(hr_feat=x3, lr_feat=x4)
        lr = torch.cat([x3, x4u], 1)
        _, x2, lru = self.ff2(hr_feat=x2, lr_feat=lr)
        lr = torch.cat([x2, lru], 1)
        _, x1, lru = self.ff3(hr_feat=x1, lr_feat=lr)
        y = torch.cat([x1, lru], 1)
        return self.cls(self.drop(self.fuse(y)))


class SegNet(nn.Module):
    def __init__(self, head, ncls):
        super().__init__()
        self.enc = Encoder()
        self.head = BilinearHead(ncls) if head == 'bilinear' else FreqFusionHead(ncls)

    def train(self, mode=True):
        super().train(mode)
        if PRETRAINED:
            for m in self.enc.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x):
        out = self.head(self.enc(x))
        return F.interpolate(out, size=x.shape[-2:], mode='bilinear', align_corners=False)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


# ---------------- metrics
def erode(m, d):  # m: (N,K,H,W) float {0,1}; 3x3 erosion with zero padding, d times
    for _ in range(d):
        m = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1), value=0.0), 3, stride=1)
    return m


@torch.no_grad()
def metrics(preds, gts, ncls):
    # preds, gts: (N,H,W) long, original size
    valid = gts != 255
    I = torch.zeros(ncls, dtype=torch.float64); U = torch.zeros(ncls, dtype=torch.float64)
    bI = torch.zeros(ncls, dtype=torch.float64); bU = torch.zeros(ncls, dtype=torch.float64)
    H, W = gts.shape[-2:]
    d = max(1, round(0.02 * math.sqrt(H * H + W * W)))
    correct = ((preds == gts) & valid).sum().item(); total = valid.sum().item()
    for s in range(0, len(preds), 16):
        p, g, v = preds[s:s + 16], gts[s:s + 16], valid[s:s + 16]
        for k in range(ncls):
            pk = (p == k) & v; gk = (g == k) & v
            I[k] += (pk & gk).sum().item(); U[k] += (pk | gk).sum().item()
        P = F.one_hot(p.clamp(max=ncls - 1), ncls).permute(0, 3, 1, 2).float()
        G = F.one_hot(torch.where(v, g, torch.zeros_like(g)), ncls).permute(0, 3, 1, 2).float()
        G = G * v[:, None]
        Pb = ((P - erode(P, d)) > 0.5) & v[:, None]
        Gb = ((G - erode(G, d)) > 0.5) & v[:, None]
        bI += (Pb & Gb).sum((0, 2, 3)).double(); bU += (Pb | Gb).sum((0, 2, 3)).double()
    iou = I / U; biou = bI / bU  # nan where union==0
    return dict(mIoU=float(np.nanmean(iou.numpy())) * 100, bIoU=float(np.nanmean(biou.numpy())) * 100,
                aAcc=correct / total * 100, d=d, per_class_iou=[round(float(v) * 100, 2) for v in iou],
                per_class_biou=[round(float(v) * 100, 2) for v in biou])


@torch.no_grad()
def predict(model, x, bs=8):
    # batch 8: with batch 1 this torch build (netlib BLAS) routes small convs to slow_conv2d (~10-20x slower)
    model.eval()
    preds = []
    t0 = time.perf_counter()
    for i in range(0, len(x), bs):
        xi = x[i:i + bs]
        H, W = xi.shape[-2:]
        xp, _ = pad32(xi)
        logit = model(norm(xp))[..., :H, :W]
        preds.append(logit.argmax(1))
    dt = time.perf_counter() - t0
    return torch.cat(preds), dt / len(x) * 1000


# ---------------- training
def balanced_weights(y, ncls):
    """The trainer's short-run class weights: sqrt(median frequency / frequency), clamped to [0.1, 10]; absent classes 1."""
    counts = torch.bincount(y[y != 255].flatten(), minlength=ncls)[:ncls].double()
    present = counts[counts > 0]
    w = torch.ones(ncls, dtype=torch.float64)
    w[counts > 0] = (present.median() if len(present) % 2 else present.sort().values[len(present) // 2 - 1:len(present) // 2 + 1].mean()) / counts[counts > 0]
    w[counts > 0] = w[counts > 0].sqrt().clamp(0.1, 10)
    return w.float()


def train(model, x, y, epochs, bs=8, lr=1e-3, wd=0.01, warmup=50, seed=1, log=None, head_mult=1.0, flip_p=0.5, val=None, ncls=None,
          class_weights=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([dict(params=model.enc.parameters(), mult=1.0), dict(params=model.head.parameters(), mult=head_mult)],
                            lr=lr, weight_decay=wd)
    n = len(x); ipe = math.ceil(n / bs); total = ipe * epochs
    it = 0
    curve = []
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        lsum = 0.0
        for b in range(ipe):
            idx = perm[b * bs:(b + 1) * bs]
            xb, yb = x[idx].clone(), y[idx].clone()
            flip = torch.rand(len(idx), generator=g) < flip_p
            xb[flip] = xb[flip].flip(-1); yb[flip] = yb[flip].flip(-1)
            xb, yb = pad32(xb, yb)
            cur = lr * (1 - it / total) ** 1.0 * min(1.0, (it + 1) / warmup)
            for pg in opt.param_groups:
                pg['lr'] = cur * pg['mult']
            out = model(norm(xb))
            loss = F.cross_entropy(out, yb, weight=class_weights, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lsum += loss.item(); it += 1
        if val is not None:
            t1 = time.perf_counter()
            vm = metrics(predict(model, val[0])[0], val[1], ncls)['mIoU']
            curve.append(round(vm, 2))
            t0 += time.perf_counter() - t1  # validation time is not training time
        if log:
            log(f'  ep {ep + 1}/{epochs} loss {lsum / ipe:.4f} t {time.perf_counter() - t0:.1f}s' + (f' val mIoU {curve[-1]:.2f}' if val is not None else ''))
    return time.perf_counter() - t0, total, curve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True, help='folder holding <ds>/train.csv, test.csv, classes.json')
    ap.add_argument('--ds', required=True)
    ap.add_argument('--head', required=True)
    ap.add_argument('--epochs', type=int, required=True)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--ntrain', type=int, default=None)
    ap.add_argument('--out', default='results.jsonl')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--head-mult', type=float, default=1.0)
    ap.add_argument('--bs', type=int, default=8)
    ap.add_argument('--cls-std', type=float, default=None, help="classifier weights ~ N(0, std), bias 0 (mmseg's and the trainer's init: 0.01)")
    ap.add_argument('--balanced', action='store_true', help="class weights as the trainer's short-run recipe")
    ap.add_argument('--val', action='store_true', help='mIoU on <ds>/val.csv after every epoch (not counted as training time)')
    ap.add_argument('--flip', type=float, default=0.5)
    ap.add_argument('--pretrained', default=None, help='ResNet18.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18')
    ap.add_argument('--map', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'src', 'MLNetFreqFusion', 'Backbones', 'Resources', 'resnet18_torchvision_map.tsv'))
    a = ap.parse_args()
    global ROOT, PRETRAINED
    ROOT = a.root
    PRETRAINED = (a.pretrained, a.map) if a.pretrained else None
    log = lambda s: (print(s, flush=True))
    random.seed(a.seed); np.random.seed(a.seed); torch.manual_seed(a.seed)
    ncls = len(json.load(open(f'{ROOT}/{a.ds}/classes.json'))['classes'])
    xtr, ytr = load_split(a.ds, 'train', a.ntrain)
    xte, yte = load_split(a.ds, 'test')
    model = SegNet(a.head, ncls)
    if a.cls_std is not None:
        nn.init.normal_(model.head.cls.weight, 0, a.cls_std)
        nn.init.zeros_(model.head.cls.bias)
    log(f'{a.ds} {a.head} ep={a.epochs} seed={a.seed} ntrain={len(xtr)} ntest={len(xte)} img={tuple(xtr.shape[-2:])} '
        f'params total={nparams(model)} head={nparams(model.head)}')
    val = load_split(a.ds, 'val') if a.val else None
    tt, iters, curve = train(model, xtr, ytr, a.epochs, bs=a.bs, lr=a.lr, seed=a.seed, log=log, head_mult=a.head_mult, flip_p=a.flip,
                             val=val, ncls=ncls, class_weights=balanced_weights(ytr, ncls) if a.balanced else None)
    preds, ms = predict(model, xte)
    m = metrics(preds, yte, ncls)
    res = dict(ds=a.ds, head=a.head, epochs=a.epochs, lr=a.lr, head_mult=a.head_mult, bs=a.bs, flip=a.flip,
               pretrained=bool(a.pretrained), balanced=a.balanced, cls_std=a.cls_std, val_curve=curve, threads=torch.get_num_threads(), load1=round(os.getloadavg()[0],2), seed=a.seed, ntrain=len(xtr), iters=iters,
               train_s=round(tt, 1), infer_ms=round(ms, 2), **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in m.items()})
    log(json.dumps(res))
    with open(a.out, 'a') as f:
        f.write(json.dumps(res) + '\n')


if __name__ == '__main__':
    main()
