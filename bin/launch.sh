# Sourced by bin/ckimg (with $ckimg_bin = the folder bin/ckimg is in): starts the ckimg CLI.
# The reporting verbs (src/cli/snapshot-verbs.ts) start from the V8 snapshot that `npm run build` made
# (dist/bin/ckimg.blob, see src/cli/snapshot.ts): ~0.1 s less CPU per command. The blob is
# used only when its stamp names the node binary found on PATH (a snapshot is tied to one
# build of node; -ef compares device and inode, so an upgraded node misses) and this checkout
# (the paths in it are absolute), and no NODE_OPTIONS would change V8's flags. Otherwise, and
# for every other verb, bin/ckimg runs as a plain Node script. Shell built-ins only: every
# program started here would cost more than it saves.
ckimg_blob=$ckimg_bin/../dist/bin/ckimg.blob
# the stamp: the node that built the blob, this checkout's bin folder, the verbs it serves
if [ -z "${NODE_OPTIONS-}" ] && [ -n "${1-}" ] && [ -f "$ckimg_blob" ] &&
   read -r ckimg_node ckimg_dir ckimg_verbs < "$ckimg_blob.stamp" 2>/dev/null; then
  case " $ckimg_verbs " in
    *" $1 "*)
      if [ "$ckimg_bin" -ef "$ckimg_dir" ] && ckimg_path_node=$(command -v node) &&
         [ "$ckimg_path_node" -ef "$ckimg_node" ] && ! [ "$ckimg_node" -nt "$ckimg_blob" ]; then
        exec "$ckimg_path_node" --snapshot-blob "$ckimg_blob" "$@"
      fi
      ;;
  esac
fi
exec node "$ckimg_bin/ckimg" "$@"
