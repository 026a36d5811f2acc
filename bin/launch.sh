# Sourced by bin/ckimg (with $ckimg_bin = the folder bin/ckimg is in): starts the ckimg CLI.
# The reporting verbs (src/cli/snapshot-verbs.ts) start from the V8 snapshot that `npm run build` made
# (dist/bin/ckimg.blob, see src/cli/snapshot.ts): ~0.1 s less CPU per command. The blob is
# used only when its stamp names the node binary found on PATH (a snapshot is tied to one
# build of node; -ef compares device and inode, so an upgraded node misses) and this checkout
# (the paths in it are absolute), and no NODE_OPTIONS would change V8's flags. Otherwise, and
# for every other verb, bin/ckimg runs as a plain Node script. Shell built-ins only: every
# program started here would cost more than it saves.
ckimg_blob=$ckimg_bin/../dist/bin/ckimg.blob
# the stamp: the node that built the blob, this checkout's bin folder, the verbs it serves;
# its second line the V8 flags the blob was built with (it starts under those only)
if [ -z "${NODE_OPTIONS-}" ] && [ -n "${1-}" ] && [ -f "$ckimg_blob" ] &&
   { read -r ckimg_node ckimg_dir ckimg_verbs && read -r ckimg_v8_flags; } < "$ckimg_blob.stamp" 2>/dev/null; then
  case " $ckimg_verbs " in
    *" $1 "*)
      if [ "$ckimg_bin" -ef "$ckimg_dir" ] && ckimg_path_node=$(command -v node) &&
         [ "$ckimg_path_node" -ef "$ckimg_node" ] && ! [ "$ckimg_node" -nt "$ckimg_blob" ]; then
        # Start-up costs of these short commands that buy them nothing (measured on `inspect`
        # of a 1 GiB CRIU dump, ~0.35 s of CPU in all):
        # - node parses every certificate of NODE_EXTRA_CA_CERTS when it starts (~40 ms for a
        #   system bundle of 144); the reporting verbs open no TLS connection.
        # - node reads the 7 MB blob into fresh memory and V8 deserialises it into more:
        #   ~30 % of the CPU went to page faults. glibc's malloc asks for transparent huge
        #   pages (where the kernel's THP mode is `madvise`) with this tunable: ~50 ms less.
        #   An older glibc ignores it.
        unset NODE_EXTRA_CA_CERTS
        GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1
        export GLIBC_TUNABLES
        # $ckimg_v8_flags unquoted: one word per flag (they hold no spaces)
        exec "$ckimg_path_node" $ckimg_v8_flags --snapshot-blob "$ckimg_blob" "$@"
      fi
      ;;
  esac
fi
# `ckimg run`: the job it starts waits for Node's start-up, and Node parses every certificate of
# NODE_EXTRA_CA_CERTS first (~40 ms of CPU for a system bundle; ckimg run opens no TLS
# connection). It is set aside here and put back (src/cli/run.ts) before anything is started:
# the job, the capturer and scontrol see the environment ckimg run was given.
if [ "${1-}" = run ] && [ -n "${NODE_EXTRA_CA_CERTS+x}" ]; then
  CKIMG_RUN_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS
  export CKIMG_RUN_NODE_EXTRA_CA_CERTS
  unset NODE_EXTRA_CA_CERTS
fi
exec node "$ckimg_bin/ckimg" "$@"
