#!/bin/sh
# Tests of the convvae command-line tool on tiny synthetic IDX data.
# Usage: cli_test.sh CASE CONVVAE HELPER WORKDIR
# CASE "data" writes the data into WORKDIR, "train" trains WORKDIR/model.safetensors;
# the other cases use both (ctest fixtures order them).
set -u

case_name=$1
CLI=$2
HELPER=$3
W=$4
D=$W/data
M=$W/model.safetensors
T=$W/$case_name
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# run EXPECTED_RC ARGS...: runs the tool, output in $T/out and $T/err.
run() {
    expected=$1
    shift
    "$CLI" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne "$expected" ]; then
        fail "convvae $* exited $rc, expected $expected"
        sed 's/^/  stdout: /' "$T/out" >&2
        sed 's/^/  stderr: /' "$T/err" >&2
        return 1
    fi
    return 0
}

# expect_in FILE REGEX WHAT
expect_in() {
    grep -Eq -- "$2" "$1" || { fail "$3: no line matching '$2' in:"; sed 's/^/  | /' "$1" >&2; }
}

# png_dims FILE: prints "WIDTH HEIGHT" if FILE starts with a PNG signature and IHDR.
png_dims() {
    sig=$(od -An -tx1 -N16 "$1" | tr -d ' \n')
    [ "$sig" = "89504e470d0a1a0a0000000d49484452" ] || { echo "bad"; return; }
    set -- $(od -An -tu1 -j16 -N8 "$1")
    echo "$(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 )) $(( ($5 << 24) + ($6 << 16) + ($7 << 8) + $8 ))"
}

# tensor_bytes FILE: the tensor data of a safetensors file (after the
# 8-byte header length and the header).
tensor_bytes() {
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    tail -c +$((n + 9)) "$1"
}

# tmp_left DIR...: succeeds (and names them) if temporary files .NAME.tmp* are
# left in any DIR.
tmp_left() {
    left=1
    for d in "$@"; do
        for f in "$d"/.*.tmp*; do
            [ -e "$f" ] && { echo "left behind: $f" >&2; left=0; }
        done
    done
    return $left
}

# put_byte FILE OFFSET VALUE: overwrite one byte (decimal VALUE) in place.
put_byte() {
    # shellcheck disable=SC2059
    printf "\\$(printf %03o "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

TRAIN_ARGS="--images $D/train-img --labels $D/train-lbl --test-images $D/test-img \
--test-labels $D/test-lbl --batch-size 20 --encoder-units 32 --decoder-units 32 \
--category-units 32 --latent-dim 4 --clusters 3"

rm -rf "$T"
mkdir -p "$T"

case $case_name in
data)
    mkdir -p "$D/mnist" "$D/fashion-mnist" || exit 1
    "$HELPER" idx "$D/train-img" "$D/train-lbl" 60 1 || exit 1
    "$HELPER" idx "$D/test-img" "$D/test-lbl" 30 2 || exit 1
    # The named-data-set layout: raw files for mnist, gzip for fashion-mnist.
    cp "$D/train-img" "$D/mnist/train-images-idx3-ubyte"
    cp "$D/train-lbl" "$D/mnist/train-labels-idx1-ubyte"
    cp "$D/test-img" "$D/mnist/t10k-images-idx3-ubyte"
    cp "$D/test-lbl" "$D/mnist/t10k-labels-idx1-ubyte"
    if command -v gzip >/dev/null 2>&1; then
        for f in "$D"/mnist/*; do
            gzip -c "$f" >"$D/fashion-mnist/$(basename "$f").gz"
        done
    else
        cp "$D"/mnist/* "$D/fashion-mnist/"
    fi
    # Files that must fail to load.
    head -c 1000 "$D/train-img" >"$D/truncated-img"
    ;;

train)
    rm -f "$M"
    # shellcheck disable=SC2086
    if run 0 train $TRAIN_ARGS --epochs 2 --out "$M"; then
        n=$(grep -c '^epoch ' "$T/out")
        [ "$n" -eq 2 ] || fail "expected 2 epoch lines, got $n"
        num='-?[0-9]+\.[0-9]+'
        expect_in "$T/out" "^epoch 1/2  loss $num \\(recon $num kl $num cat $num bal $num\\)  train_acc $num test_acc $num test_purity $num test_nmi $num  $num s\$" "epoch line"
        expect_in "$T/out" '^epoch 2/2 ' "second epoch"
        expect_in "$T/out" '^params: +[0-9]+' "summary parameter count"
        expect_in "$T/out" '^train: +60 images 1x28x28, labelled' "summary train data"
        expect_in "$T/out" '^test: +30 images 1x28x28, labelled' "summary test data"
        expect_in "$T/out" "^saved .*model.safetensors \\(2 epochs\\)" "final save note"
        [ -s "$M" ] || fail "no checkpoint written"
        tmp_left "$W" && fail "temporary files left behind"
        # No TTY, no --progress: no bar on stderr.
        grep -q 'batches' "$T/err" && fail "progress bar drawn without a TTY"
    fi
    # --progress draws the bar to a non-TTY and ends it with a newline; --quiet hides the summary.
    # shellcheck disable=SC2086
    if run 0 train $TRAIN_ARGS --epochs 1 --progress --out "$T/p.safetensors"; then
        expect_in "$T/err" '\[=+\] 3/3 batches +[0-9]+ img/s  ETA [0-9]+:[0-9][0-9]  loss -?[0-9.]+' "progress bar"
    fi
    # shellcheck disable=SC2086
    if run 0 train $TRAIN_ARGS --epochs 1 --quiet --conv-layers 2 --save-every 0 \
        --out="$T/q.safetensors" --limit 40 --test-limit 10; then
        [ -s "$T/out" ] && fail "--quiet printed on stdout: $(head -c 200 "$T/out")"
        run 0 info --model "$T/q.safetensors" && {
            expect_in "$T/out" '^branch1_layers = 2$' "--conv-layers on branch 1"
            expect_in "$T/out" '^branch2_layers = 2$' "--conv-layers on branch 2"
        }
    fi
    ;;

eval)
    if run 0 eval --model "$M" --images "$D/test-img" --labels "$D/test-lbl"; then
        for k in acc purity nmi ari; do
            expect_in "$T/out" "^$k -?[01]\\.[0-9]{4}\$" "eval $k"
        done
        expect_in "$T/out" '^n 30$' "eval n"
        for k in loss recon kl category balance; do
            expect_in "$T/out" "^$k -?[0-9]+\\.[0-9]{4}\$" "eval $k"
        done
    fi
    if run 0 eval --model "$M" --images "$D/train-img" --labels "$D/train-lbl" --limit 25; then
        expect_in "$T/out" '^n 25$' "eval --limit"
    fi
    ;;

cluster)
    if run 0 cluster --model "$M" --images "$D/test-img"; then
        [ "$(wc -l <"$T/out")" -eq 31 ] || fail "cluster: expected 31 lines"
        [ "$(head -n 1 "$T/out")" = "index,cluster,probability" ] || fail "cluster: bad header"
        bad=$(tail -n +2 "$T/out" | grep -Evc '^[0-9]+,[0-2],(0\.[0-9]{6}|1\.000000)$')
        [ "$bad" -eq 0 ] || fail "cluster: $bad malformed rows"
        [ "$(sed -n 31p "$T/out" | cut -d, -f1)" = "29" ] || fail "cluster: last index is not 29"
    fi
    if run 0 cluster --model "$M" --images "$D/train-img" --labels "$D/train-lbl" --out "$T/c.csv"; then
        [ "$(wc -l <"$T/c.csv")" -eq 61 ] || fail "cluster --out: expected 61 lines"
        [ -s "$T/out" ] && fail "cluster --out also wrote to stdout"
    fi
    ;;

generate)
    if run 0 generate --model "$M" --out "$T/grid.png"; then
        # 3 clusters x 10 columns of 28x28 with 1-pixel gaps.
        [ "$(png_dims "$T/grid.png")" = "289 86" ] || fail "grid.png: got '$(png_dims "$T/grid.png")', want '289 86'"
    fi
    if run 0 generate --model "$M" --out "$T/g4.png" --per-cluster 4 --seed 7; then
        [ "$(png_dims "$T/g4.png")" = "115 86" ] || fail "g4.png: got '$(png_dims "$T/g4.png")', want '115 86'"
        run 0 generate --model "$M" --out "$T/g4b.png" --per-cluster 4 --seed 7 &&
            { cmp -s "$T/g4.png" "$T/g4b.png" || fail "same seed, different PNG"; }
    fi
    tmp_left "$T" && fail "temporary files left behind"
    run 1 generate --model "$M" --out "$T/no-such-dir/grid.png" &&
        expect_in "$T/err" '^convvae: .*no-such-dir' "unwritable PNG path"
    ;;

info)
    if run 0 info --model "$M"; then
        expect_in "$T/out" '^library_version = [0-9]+\.[0-9]+\.[0-9]+$' "info version"
        expect_in "$T/out" '^latent_dim = 4$' "info latent_dim"
        expect_in "$T/out" '^clusters = 3$' "info clusters"
        expect_in "$T/out" '^batch_size = 20$' "info batch_size"
        expect_in "$T/out" '^input_height = 28$' "info input shape from the data"
        expect_in "$T/out" '^epochs_done = 2$' "info epochs_done"
        expect_in "$T/out" '^parameters = [1-9][0-9]*$' "info parameters"
        # 2 epochs of 60 images in batches of 20
        expect_in "$T/out" '^optimizer_steps = 6$' "info optimizer_steps"
    fi
    ;;

resume)
    cp "$M" "$T/m.safetensors"
    # shellcheck disable=SC2086
    if run 0 train $TRAIN_ARGS --resume "$T/m.safetensors" --epochs 3 --out "$T/m3.safetensors"; then
        [ "$(grep -c '^epoch ' "$T/out")" -eq 1 ] || fail "resume: expected 1 epoch line"
        expect_in "$T/out" '^epoch 3/3 ' "resume epoch numbering"
        run 0 info --model "$T/m3.safetensors" && expect_in "$T/out" '^epochs_done = 3$' "resumed epochs"
        # The checkpoint carries the optimizer's state: 2 epochs, then 1
        # resumed, gives the same tensors (weights and optimizer moments) as
        # 3 epochs in one run. (The headers differ: the stored config keeps
        # the first run's --epochs.)
        # shellcheck disable=SC2086
        if run 0 train $TRAIN_ARGS --epochs 3 --out "$T/full3.safetensors"; then
            tensor_bytes "$T/m3.safetensors" >"$T/m3.data"
            tensor_bytes "$T/full3.safetensors" >"$T/full3.data"
            [ -s "$T/m3.data" ] && cmp -s "$T/m3.data" "$T/full3.data" ||
                fail "2 epochs + 1 resumed: tensors differ from 3 epochs in one run"
        fi
    fi
    # --weights-only: the final checkpoint has no optimizer state, and is smaller.
    # shellcheck disable=SC2086
    if run 0 train $TRAIN_ARGS --resume "$T/m.safetensors" --epochs 3 --weights-only \
        --out "$T/w3.safetensors"; then
        expect_in "$T/out" '^saved .*w3.safetensors \(3 epochs, weights only\)' "weights-only save note"
        run 0 info --model "$T/w3.safetensors" && expect_in "$T/out" '^optimizer_steps = 0$' "weights-only steps"
        [ "$(wc -c <"$T/w3.safetensors")" -lt "$(wc -c <"$T/m.safetensors")" ] ||
            fail "--weights-only checkpoint is not smaller"
    fi
    # Changing the architecture of a checkpoint is refused before any work.
    # shellcheck disable=SC2086
    run 2 train $TRAIN_ARGS --resume "$T/m.safetensors" --latent-dim 5 &&
        expect_in "$T/err" 'latent_dim' "resume mismatch names the option"
    ;;

dataset)
    if run 0 eval --model "$M" --dataset mnist --data-dir "$D"; then
        expect_in "$T/out" '^n 30$' "mnist test split"
    fi
    if run 0 eval --model "$M" --dataset mnist --data-dir "$D" --split train; then
        expect_in "$T/out" '^n 60$' "mnist train split"
    fi
    if run 0 eval --model "$M" --dataset mnist --data-dir "$D" --limit 7; then
        expect_in "$T/out" '^n 7$' "--limit on the test split"
    fi
    if run 0 cluster --model "$M" --dataset mnist --data-dir "$D" --split train --limit 9; then
        [ "$(wc -l <"$T/out")" -eq 10 ] || fail "cluster --limit 9: expected 10 lines"
    fi
    CONVVAE_DATA=$D
    export CONVVAE_DATA
    if run 0 eval --model "$M" --dataset fashion-mnist; then
        expect_in "$T/out" '^n 30$' "fashion-mnist (.gz) via CONVVAE_DATA"
    fi
    if run 0 train --dataset fashion-mnist --epochs 1 --batch-size 20 \
        --encoder-units 8 --decoder-units 8 --category-units 8 --latent-dim 2 --clusters 2 \
        --limit 20 --test-limit 10 --out "$T/f.safetensors"; then
        expect_in "$T/out" '^train: +20 images' "--limit"
        expect_in "$T/out" '^test: +10 images' "--test-limit"
        expect_in "$T/out" '^epoch 1/1 .*test_acc' "named data set epoch line"
    fi
    ;;

usage)
    run 2 && expect_in "$T/err" 'Usage' "no command"
    run 2 frobnicate && expect_in "$T/err" "unknown command 'frobnicate'" "unknown command"
    run 2 train --images "$D/train-img" --bogus 3 && expect_in "$T/err" "'--bogus'" "unknown flag"
    run 2 eval --model "$M" --images "$D/test-img" -x && expect_in "$T/err" "'-x'" "unknown short flag"
    run 2 train --images "$D/train-img" --epochs && expect_in "$T/err" "'--epochs' needs a value" "missing value"
    run 2 train --images "$D/train-img" --out --quiet && expect_in "$T/err" "'--out' needs a value" "flag as value"
    run 2 train --images "$D/train-img" --epochs abc && expect_in "$T/err" "epochs" "bad number"
    run 2 train --images "$D/train-img" --epochs 0 && expect_in "$T/err" "epochs" "out-of-range number"
    run 2 train --images "$D/train-img" --learning-rate 1x && expect_in "$T/err" "learning" "bad float"
    run 2 train --images "$D/train-img" --learning-rate 1e-400 &&
        expect_in "$T/err" "learning_rate = 1e-400 is out of range" "number beyond a double"
    run 2 train --images "$D/train-img" --prior gaussian && expect_in "$T/err" "prior" "bad enum"
    run 2 train --images "$D/train-img" --limit -3 && expect_in "$T/err" "limit" "negative limit"
    run 2 train --images "$D/train-img" --save-every x && expect_in "$T/err" "save-every" "bad save-every"
    run 2 train --images "$D/train-img" --quiet=1 && expect_in "$T/err" "takes no value" "value on a switch"
    run 2 train --epochs 3 && expect_in "$T/err" "no data" "no data"
    run 2 train --dataset cifar && expect_in "$T/err" "cifar" "unknown data set"
    run 2 train --dataset mnist --images "$D/train-img" && expect_in "$T/err" "not both" "two data sources"
    run 2 train --labels "$D/train-lbl" && expect_in "$T/err" "--labels needs --images" "labels alone"
    run 2 eval --images "$D/test-img" && expect_in "$T/err" "--model" "eval without model"
    run 2 eval --model "$M" --dataset mnist --split dev && expect_in "$T/err" "split" "bad split"
    run 2 generate --model "$M" && expect_in "$T/err" "--out" "generate without out"
    run 2 generate --model "$M" --out x.png --per-cluster 0 && expect_in "$T/err" "per-cluster" "per-cluster 0"
    run 2 generate --model "$M" --out x.png --seed -1 && expect_in "$T/err" "seed" "negative seed"
    run 2 info && expect_in "$T/err" "--model" "info without model"
    run 2 info --model "$M" stray && expect_in "$T/err" "stray" "positional argument"
    run 2 cluster --model "$M" --images "$D/test-img" --test-images "$D/test-img" &&
        expect_in "$T/err" "test-images" "train-only flag on cluster"
    for c in train eval cluster generate info; do
        run 0 "$c" --help && expect_in "$T/out" "Usage: convvae $c" "$c --help"
    done
    run 0 train --help && expect_in "$T/out" '--latent-dim +latent dimension' "train --help lists the config options"
    run 0 help && expect_in "$T/out" 'Commands:' "help"
    run 0 help generate && expect_in "$T/out" 'Usage: convvae generate' "help generate"
    run 0 --version && expect_in "$T/out" '^convvae [0-9]+\.[0-9]+\.[0-9]+' "--version"
    ;;

runtime)
    run 1 train --images "$D/missing-img" --epochs 1 &&
        expect_in "$T/err" '^convvae: .+: .*missing-img' "missing image file"
    run 1 train --images "$D/truncated-img" --epochs 1 &&
        expect_in "$T/err" '^convvae: .+: ' "truncated image file"
    run 1 train --images "$D/train-img" --labels "$D/test-lbl" --epochs 1 &&
        expect_in "$T/err" '^convvae: ' "label count mismatch"
    run 1 train --dataset mnist --data-dir "$T/empty" --epochs 1 &&
        expect_in "$T/err" 'cannot find .*train-images-idx3-ubyte' "data set not on disk"
    run 1 eval --model "$D/missing.safetensors" --images "$D/test-img" --labels "$D/test-lbl" &&
        expect_in "$T/err" '^convvae: .+: ' "missing model"
    run 1 info --model "$D/train-img" && expect_in "$T/err" '^convvae: .+: ' "not a checkpoint"
    run 1 eval --model "$M" --images "$D/test-img" && expect_in "$T/err" '^convvae: .+: .*label' "eval without labels"
    run 1 train --images "$D/train-img" --labels "$D/train-lbl" --epochs 1 --input-height 32 --input-width 32 \
        --out "$T/x.safetensors" && expect_in "$T/err" '^convvae: ' "shape mismatch"
    # A flipped bit in the weights is found by the checksum, which names the tensor.
    cp "$M" "$T/flip.safetensors"
    size=$(wc -c <"$M")
    last=$(tail -c 1 "$M" | od -An -tu1 | tr -d ' ')
    put_byte "$T/flip.safetensors" $((size - 1)) $((last ^ 16))
    run 1 info --model "$T/flip.safetensors" &&
        expect_in "$T/err" 'tensor ".*" is damaged' "flipped bit"
    # Without the checksum (the key renamed) the file loads; a NaN weight in it
    # is refused instead of turning every probability into nan.
    cp "$M" "$T/nan.safetensors"
    key=$(grep -abo '"tensors_crc32"' "$T/nan.safetensors" | head -n 1 | cut -d: -f1)
    put_byte "$T/nan.safetensors" $((key + 13)) 120
    run 0 info --model "$T/nan.safetensors"
    hlen=$(od -An -tu8 -N8 "$M" | tr -d ' ')
    for i in 0 1 2; do put_byte "$T/nan.safetensors" $((hlen + 8 + i)) 255; done
    put_byte "$T/nan.safetensors" $((hlen + 11)) 127
    run 1 cluster --model "$T/nan.safetensors" --images "$D/test-img" &&
        expect_in "$T/err" 'is not finite' "NaN weight"
    [ -s "$T/out" ] && fail "cluster printed rows from a NaN model"
    ;;

outputs)
    # Every file the tool writes replaces only a regular file, is checked
    # before any work, and goes through a symbolic link to the file it
    # points to. Device nodes are made here (mknod, root only), never /dev's.
    SMALL="--images $D/train-img --batch-size 20 --encoder-units 8 --decoder-units 8 \
--category-units 8 --latent-dim 2 --clusters 2 --epochs 1"
    mkfifo "$T/fifo"
    mkdir "$T/dir"
    ln -s missing/x "$T/dangling"
    specials="fifo dir dangling"
    if mknod "$T/null" c 1 3 2>/dev/null; then
        specials="$specials null"
    else
        echo "outputs: mknod not permitted: device node case skipped"
    fi
    for o in $specials; do
        # shellcheck disable=SC2086
        run 1 train $SMALL --out "$T/$o" &&
            expect_in "$T/err" "$o is (a FIFO|a directory|a character device|a symbolic link to a file that does not exist)" "train --out $o"
        [ -s "$T/out" ] && fail "train --out $o: refused only after starting"
        run 1 generate --model "$M" --out "$T/$o" &&
            expect_in "$T/err" "$o is " "generate --out $o"
        run 1 cluster --model "$M" --images "$D/test-img" --out "$T/$o" &&
            expect_in "$T/err" "$o is " "cluster --out $o"
    done
    [ -p "$T/fifo" ] || fail "the FIFO was replaced"
    [ -d "$T/dir" ] && [ -z "$(ls -A "$T/dir")" ] || fail "the directory was changed"
    [ -L "$T/dangling" ] || fail "the dangling link was replaced"
    case $specials in *null*) [ -c "$T/null" ] || fail "the device node was replaced" ;; esac

    # Symbolic links: the target is written, the link stays.
    mkdir "$T/real"
    cp "$M" "$T/real/m.safetensors"
    ln -s real/m.safetensors "$T/m-link"
    echo old >"$T/real/g.png"
    ln -s real/g.png "$T/g-link"
    echo old >"$T/real/c.csv"
    ln -s "$T/real/c.csv" "$T/c-link"
    # shellcheck disable=SC2086
    run 0 train $SMALL --quiet --out "$T/m-link"
    [ -L "$T/m-link" ] || fail "train replaced the symbolic link"
    run 0 info --model "$T/real/m.safetensors" &&
        expect_in "$T/out" '^epochs_done = 1$' "train wrote the link's target"
    run 0 generate --model "$M" --out "$T/g-link" --per-cluster 2
    [ -L "$T/g-link" ] || fail "generate replaced the symbolic link"
    [ "$(png_dims "$T/real/g.png")" = "57 86" ] || fail "generate did not write the link's target"
    run 0 cluster --model "$M" --images "$D/test-img" --out "$T/c-link"
    [ -L "$T/c-link" ] || fail "cluster replaced the symbolic link"
    [ "$(wc -l <"$T/real/c.csv")" -eq 31 ] || fail "cluster did not write the link's target"

    # A temporary file left by a killed process is taken over, not left.
    echo partial >"$T/real/.c.csv.tmp"
    echo partial >"$T/real/.m.safetensors.tmp"
    run 0 cluster --model "$M" --images "$D/test-img" --out "$T/real/c.csv"
    # shellcheck disable=SC2086
    run 0 train $SMALL --quiet --out "$T/real/m.safetensors"
    tmp_left "$T" "$T/real" && fail "temporary files left behind"
    ;;

writeerr)
    # Output that cannot be written (here /dev/full: "no space left") is an
    # error, exit 1 with a message, for every command.
    if ! [ -c /dev/full ] || ! [ -w /dev/full ]; then
        echo "writeerr: no writable /dev/full: skipped"
        exit 0
    fi
    # full ARGS...: the tool with stdout on /dev/full must exit 1 and say why.
    full() {
        "$CLI" "$@" >/dev/full 2>"$T/err"
        rc=$?
        if [ "$rc" -ne 1 ]; then
            fail "convvae $* >/dev/full exited $rc, expected 1"
        else
            expect_in "$T/err" 'cannot write to standard output' "convvae $* >/dev/full"
        fi
    }
    full eval --model "$M" --images "$D/test-img" --labels "$D/test-lbl"
    full info --model "$M"
    full cluster --model "$M" --images "$D/test-img"
    full generate --model "$M" --out "$T/g.png"
    for c in train eval cluster generate info; do full "$c" --help; done
    full help
    full help train
    full --version
    # train finds out before training, and writes no checkpoint
    # shellcheck disable=SC2086
    full train $TRAIN_ARGS --epochs 1 --out "$T/t.safetensors"
    [ -e "$T/t.safetensors" ] && fail "train trained although stdout was unwritable"
    # --quiet prints nothing, so nothing fails
    # shellcheck disable=SC2086
    "$CLI" train $TRAIN_ARGS --epochs 1 --quiet --out "$T/q.safetensors" >/dev/full 2>"$T/err" ||
        fail "train --quiet >/dev/full failed: $(cat "$T/err")"
    ;;

sigint2)
    # A second Ctrl-C during the final save does not cut it short: the save
    # finishes (no temporary file is left), then the tool exits 130. A 12 MB
    # checkpoint makes the save last long enough to be hit. --save-every 0:
    # the final save is the only one.
    "$HELPER" sigint2 "$T/out" "$T/.int2.safetensors.tmp" "$CLI" train --images "$D/train-img" \
        --batch-size 20 --encoder-units 128 --decoder-units 128 --category-units 8 --latent-dim 2 \
        --clusters 2 --epochs 100000 --save-every 0 --out "$T/int2.safetensors" >"$T/out" 2>"$T/err"
    rc=$?
    case $rc in
    130) expect_in "$T/err" 'finishing the checkpoint first' "second signal noted" ;;
    202) ;; # the second signal came just after the save had finished
    101) fail "the command ended before its save was seen" ;;
    *) fail "twice interrupted train exited $rc"; sed 's/^/  stderr: /' "$T/err" >&2 ;;
    esac
    tmp_left "$T" && fail "temporary file left by the interrupted save"
    run 0 info --model "$T/int2.safetensors"
    ;;

sigint|sigterm)
    # Many short epochs; the signal once the first checkpoint exists (epoch 1
    # is done, the handler is installed) must save and exit 130 / 143.
    want=130
    [ "$case_name" = sigterm ] && want=143
    "$HELPER" "$case_name" "$T/int.safetensors" "$CLI" train --images "$D/train-img" --batch-size 20 \
        --encoder-units 8 --decoder-units 8 --category-units 8 --latent-dim 2 --clusters 2 \
        --epochs 100000 --out "$T/int.safetensors" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "interrupted train exited $rc, expected $want"
        sed 's/^/  stderr: /' "$T/err" >&2
    else
        expect_in "$T/err" 'interrupted' "interrupt note"
        expect_in "$T/err" 'saved .*int.safetensors' "saved note"
        cp "$T/err" "$T/train-err"
        if run 0 info --model "$T/int.safetensors"; then
            expect_in "$T/out" '^epochs_done = [1-9][0-9]*$' "epochs saved after SIGINT"
            done_epochs=$(sed -n 's/^epochs_done = //p' "$T/out")
            expect_in "$T/train-err" "after $done_epochs complete epoch" "note and checkpoint agree"
        fi
    fi
    ;;

*)
    echo "unknown case $case_name" >&2
    exit 2
    ;;
esac

if [ "$failures" -ne 0 ]; then
    echo "$case_name: $failures failure(s)" >&2
    exit 1
fi
echo "$case_name: ok"
exit 0
